package postgres

// ByKeySQL is ByKey's statement, for the round-trip floor benchmark.
const ByKeySQL = byKeySQL
