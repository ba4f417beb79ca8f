// How long the tests' PostgreSQL stores wait before calling the database unavailable. Production's
// 3 s is a promise to callers during an outage (tested on its own); the suites run many tests in
// parallel on two cores, where a commit that queues behind others can take longer than that.
import Foundation

let testDatabaseTimeout: TimeInterval = 30
