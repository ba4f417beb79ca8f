// Rows read straight from SQLite's C API, for the reads verification makes by the million (leaves,
// tree hashes, entries): GRDB's generic row decoding costs more than SQLite's reading there.
import Foundation
import GRDB
import GRDBSQLite
import MusterAudit

struct RawRow {
    let statement: SQLiteStatement

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }

    func text(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(statement, column) else { return "" }
        return String(cString: text)
    }

    /// The blob's bytes, valid until the next row.
    func blob(_ column: Int32) -> UnsafeRawBufferPointer {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard let base = sqlite3_column_blob(statement, column), count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base, count: count)
    }

    func bytes(_ column: Int32) -> [UInt8]? { isNull(column) ? nil : Array(blob(column)) }

    func hash(_ column: Int32) -> LogHash? { LogHash(bytes: blob(column)) }

    /// Runs `sql` and calls `body` for each row.
    static func each(_ db: Database, sql: String, arguments: StatementArguments, _ body: (RawRow) throws -> Void) throws {
        let statement = try db.cachedStatement(sql: sql)
        let cursor = try Row.fetchCursor(statement, arguments: arguments)
        let row = RawRow(statement: statement.sqliteStatement)
        while try cursor.next() != nil { try body(row) }
    }
}
