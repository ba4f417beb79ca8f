// /api/v1/reports/compliance: the compliance report (MusterRuntime's ComplianceReport) for auditors,
// as JSON (both tables) or one table as CSV. The web page (AuditorPages) answers with the same bytes.
import Foundation
import HTTPTypes
import Hummingbird
import MusterCore
import MusterPlaybooks
import MusterRuntime

extension MusterServer {
    var complianceRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("reports/compliance") { request, context in
            let account = try context.requireAccount()
            try account.require(.export)
            let query = try QueryReader(request, allowed: ["from", "to", "site", "type", "format", "table"])
            return try await self.complianceResponse(from: query["from"], to: query["to"], site: query["site"], type: query["type"],
                                                     format: query["format"] ?? "json", table: query["table"] ?? "incidents")
        }
        return routes
    }

    /// The report for the period, checked field by field first; a problem names each bad parameter.
    func complianceResponse(from: String?, to: String?, site: String?, type: String?, format: String, table: String) async throws -> Response {
        let directory = await catalog.directory
        var errors: [Problem.FieldError] = []
        if from == nil { errors.append(.init(pointer: "from", detail: "required: the first day (2026-09-01) or an RFC 3339 date-time")) }
        if to == nil { errors.append(.init(pointer: "to", detail: "required: the last day (2026-12-18, included) or an RFC 3339 date-time (excluded)")) }
        if format != "json" && format != "csv" { errors.append(.init(pointer: "format", detail: "json or csv, not '\(format)'")) }
        let chosenTable = ComplianceReport.Table(rawValue: table)
        if chosenTable == nil { errors.append(.init(pointer: "table", detail: "incidents or summary, not '\(table)'")) }
        if let site, directory.sites[SiteID(site)] == nil {
            errors.append(.init(pointer: "site", detail: "no site '\(site)'" + suggestion(for: site, among: directory.sites.keys.map(\.rawValue).sorted())))
        }
        if let type, !directory.incidentTypes.contains(where: { $0.id.rawValue == type }) {
            errors.append(.init(pointer: "type", detail: "no incident type '\(type)'" + suggestion(for: type, among: directory.incidentTypes.map(\.id.rawValue))))
        }
        var period: (from: Date, to: Date)?
        if let from, let to {
            switch ComplianceReport.period(from: from, to: to, zone: directory.district.zone) {
            case .success(let found): period = found
            case .failure(let error): errors.append(.init(pointer: error.field, detail: error.detail))
            }
        }
        guard errors.isEmpty, let period, let chosenTable else {
            throw Problem.badRequest(errors.map { "\($0.pointer): \($0.detail)" }.joined(separator: "; "), errors: errors)
        }
        let report: ComplianceReport
        do {
            report = try await reads.complianceReport(from: period.from, to: period.to, site: site.map(SiteID.init), type: type.map(IncidentTypeID.init),
                                                      asOf: clock.now())
        } catch let error as StoreError {
            throw Problem.from(error)
        }
        let name = "muster-compliance-" + [from, to].compactMap { $0 }.map { String($0.prefix(10)) }.joined(separator: "-to-")
        let bytes = format == "json" ? Array(try report.json()) : Array(report.csv(chosenTable).utf8)
        return Response(status: .ok, headers: [
            .contentType: format == "json" ? "application/json" : "text/csv; charset=utf-8",
            .contentDisposition: "attachment; filename=\"\(name)\(format == "csv" ? "-" + table : "").\(format)\"",
            .cacheControl: "no-store",
        ], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
