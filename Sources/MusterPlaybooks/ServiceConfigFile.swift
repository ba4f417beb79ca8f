// The service's configuration file (muster.yaml), read as strictly as playbooks: an unknown key or
// a value of the wrong kind is an error at its line and column. The command line and the
// environment override what the file says.
import Foundation
import MusterCore
import Yams

public struct ServiceConfigFile: Sendable, Hashable {
    public var host: String?
    public var port: Int?
    public var dataDir: String?
    public var databaseURL: String?
    public var playbooks: String?
    public var deliveryFile: String?
    public var integrations: [String: IntegrationMappingConfig] = [:]

    public init() {}

    /// Reads the file; on errors, the diagnostics say what is wrong and where.
    public static func parse(_ text: String, file: String) -> (config: ServiceConfigFile?, diagnostics: [Diagnostic]) {
        let reader = YAMLReader(file: file)
        var config = ServiceConfigFile()
        if let root = reader.document(text),
           let fields = reader.fields(root, "the configuration", required: [],
                                      optional: ["host", "port", "data_dir", "database_url", "playbooks", "delivery_file", "integrations"]) {
            config.host = reader.string(fields["host"], "host")
            config.port = fields["port"].flatMap { reader.integer($0, "port", in: 1...65535) }
            config.dataDir = reader.string(fields["data_dir"], "data_dir")
            config.databaseURL = reader.string(fields["database_url"], "database_url")
            config.playbooks = reader.string(fields["playbooks"], "playbooks")
            config.deliveryFile = reader.string(fields["delivery_file"], "delivery_file")
            if let node = fields["integrations"],
               let integrations = reader.fields(node, "integrations", required: [], optional: ["alertmanager", "pagerduty"]) {
                for name in ["alertmanager", "pagerduty"] {
                    guard let node = integrations[name] else { continue }
                    config.integrations[name] = IntegrationMappingConfig.parse(node, what: "integrations.\(name)", reader: reader)
                }
            }
        }
        return (reader.diagnostics.hasErrors ? nil : config, reader.diagnostics)
    }
}

/// Where an integration's events carry type, site and severity, and what their severities mean.
public struct IntegrationMappingConfig: Sendable, Hashable {
    public var typeLabels: [String]?
    public var siteLabels: [String]?
    public var severityLabels: [String]?
    public var severities: [String: Severity] = [:]
    public var defaultType: String?
    public var defaultSite: String?
    public var defaultSeverity: Severity?

    static func parse(_ node: Node, what: String, reader: YAMLReader) -> IntegrationMappingConfig? {
        guard let fields = reader.fields(node, what, required: [], optional: [
            "type_labels", "site_labels", "severity_labels", "severities", "default_type", "default_site", "default_severity",
        ]) else { return nil }
        var mapping = IntegrationMappingConfig()
        func names(_ key: String) -> [String]? {
            reader.list(fields[key], "\(what).\(key)")?.compactMap { reader.string($0, "\(what).\(key)") }
        }
        mapping.typeLabels = names("type_labels")
        mapping.siteLabels = names("site_labels")
        mapping.severityLabels = names("severity_labels")
        mapping.defaultType = reader.string(fields["default_type"], "\(what).default_type")
        mapping.defaultSite = reader.string(fields["default_site"], "\(what).default_site")
        mapping.defaultSeverity = fields["default_severity"].flatMap { reader.choice($0, "\(what).default_severity", Severity.self) }
        if let node = fields["severities"], let entries = node.mapping {
            for (key, value) in entries {
                guard let name = reader.string(key, "\(what).severities"),
                      let severity = reader.choice(value, "\(what).severities.\(name)", Severity.self) else { continue }
                mapping.severities[name.lowercased()] = severity
            }
        } else if let node = fields["severities"] {
            reader.error("\(what).severities must map the sender's severities to low, moderate, high or imminent", at: node)
        }
        return mapping
    }
}
