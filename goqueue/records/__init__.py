"""RecordBatch v2: header views, validation, building, decoding and compression."""
