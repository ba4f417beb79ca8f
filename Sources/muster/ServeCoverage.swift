// `muster serve` checks coverage once at start: the gaps in the next 24 hours are logged as
// warnings and counted on /metrics (muster_coverage_gaps), so a hole in a rota shows before a page falls into it.
import Foundation
import Logging
import MusterCore
import MusterHTTP
import MusterPlaybooks

/// Logs up to `limit` gaps, then how many more, and sets the gauge. The folder is read again only for
/// the steps' positions; the gaps come from the catalog the service runs.
func checkCoverageAtStart(_ catalog: Catalog, folder: String, channels: ChannelsConfig, settings: Settings,
                          metrics: MusterMetrics, logger: Logger, now: Date = Date(), limit: Int = 20) {
    // With the demonstration inbox every channel is taken (by the inbox), as on the coordinator's page.
    let providers = settings.value(.demonstrationInbox) == "true" ? Set(ChannelKind.allCases) : ChannelProviders.configured(channels, settings: settings)
    let gaps = CoverageCheck(catalog: catalog, providers: providers).gaps(from: now, days: 1)
    metrics.coverageGaps(gaps.count)
    guard !gaps.isEmpty else { return }
    let sources = PlaybookLoader.load(folder: URL(fileURLWithPath: folder), displayPath: folder).sources
    for line in coverageWarnings(Array(gaps.prefix(limit)), catalog: catalog, sources: sources, label: "") { logger.warning("coverage: \(line)") }
    let more = gaps.count > limit ? " (\(gaps.count - limit) more not shown)" : ""
    let summary = "\(gaps.count) gap\(gaps.count == 1 ? "" : "s") in the next 24 hours\(more) with providers for "
        + "\(ChannelProviders.describe(providers)); see `muster playbook coverage \(folder) --days 1`"
    logger.warning("coverage: \(summary)")
}
