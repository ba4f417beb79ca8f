// The worker's wake-up: a notification or the deadline ends a wait, and every later wait waits again.
import Foundation
import MusterTestSupport
@testable import MusterRuntime
import Testing

private actor Flag {
    var done = false
    func set() { done = true }
}

@Suite("Work signal")
struct WorkSignalTests {
    @Test("a wait ends at its deadline, and the next wait still waits for a notification or its own deadline")
    func waitsAgainAfterTimeout() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 0))
        let signal = WorkSignal()
        for round in 1...3 {
            let finished = Flag()
            let waiter = Task {
                await signal.wait(until: clock.now().addingTimeInterval(10), clock: clock)
                await finished.set()
            }
            try await Task.sleep(for: .milliseconds(50))
            #expect(await finished.done == false, "round \(round): the wait returned before its deadline or a notification")
            if round == 2 { signal.notify() } else { clock.advance(by: 10) }
            await waiter.value
            #expect(await finished.done)
        }
    }

    @Test("a deadline that passes before the wait has begun still ends it (no lost wake-up)")
    func deadlineBeforeWaiting() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 0))
        let signal = WorkSignal()
        for round in 0..<200 {
            let finished = Flag()
            let waiter = Task {
                // The deadline is now: the timer task may fire before the wait registers.
                await signal.wait(until: clock.now(), clock: clock)
                await finished.set()
            }
            // A lost wake-up never ends; a slow one can, when other suites hold the few threads
            // (subprocesses started and awaited by the CLI tests): wait long enough to tell the two apart.
            let deadline = Date().addingTimeInterval(30)
            while await !finished.done, Date() < deadline { try await Task.sleep(for: .milliseconds(1)) }
            #expect(await finished.done, "round \(round): a wait whose deadline had passed never ended")
            if await !finished.done {
                signal.notify()
                return
            }
            await waiter.value
        }
    }

    @Test("a notification that comes while nobody waits ends the next wait at once, once")
    func pendingNotification() async throws {
        let clock = ManualClock(Date(timeIntervalSince1970: 0))
        let signal = WorkSignal()
        signal.notify()
        await signal.wait(until: clock.now().addingTimeInterval(10), clock: clock)
        let finished = Flag()
        let waiter = Task {
            await signal.wait(until: clock.now().addingTimeInterval(10), clock: clock)
            await finished.set()
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(await finished.done == false, "the notification was used up by the first wait")
        waiter.cancel()
        await waiter.value
    }
}

@Suite("The demonstration clock")
struct ScaledClockTests {
    @Test("a scaled clock runs `speed` times faster than the wall from its start, and sleeps that much shorter")
    func scaled() async throws {
        let start = Date().addingTimeInterval(-2)  // made two wall seconds ago
        let clock = ScaledClock(speed: 60, start: start)
        let now = clock.now()
        #expect(now.timeIntervalSince(start) >= 120)  // at least 2 s × 60
        #expect(now.timeIntervalSince(start) < 120 + 60 * 60)  // and not an hour of wall time
        // A deadline 60 scaled seconds ahead is at most one wall second away; one in the past, none.
        let wall = clock.wallSeconds(until: clock.now().addingTimeInterval(60))
        #expect(wall > 0.5 && wall <= 1)
        #expect(clock.wallSeconds(until: now.addingTimeInterval(-5)) < 0)
        try await clock.sleep(until: now.addingTimeInterval(-5))  // returns at once
        try await clock.sleep(until: clock.now().addingTimeInterval(6))
        #expect(clock.now().timeIntervalSince(now) >= 6)
    }
}
