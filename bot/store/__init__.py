"""The SQLite trade log: its schema and migrations (:mod:`.schema`), a bar's events as rows and back
(:mod:`.rows`), whether a file is a trade log we may open (:mod:`.files`), the store the engine and the
readers use (:mod:`.trade_store`) and the writer process that commits bars behind the engine
(:mod:`.writer`)."""
