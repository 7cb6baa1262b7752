"""Windowed trace state in RocksDB (faust tables) with a deadline index in the same store."""
