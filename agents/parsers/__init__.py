"""Text parsers for sources that do not write JSON: logfmt, regex, grok and its built-in library.

`SourceParsers` picks the parsers of a chunk's source (pod annotation, then `parse.sources`), and
`TextChain` turns each line into a record that the parse stage's JSON reference then reads, so the
trace id, time, level and service come out of text lines exactly as out of JSON ones.
"""

from agents.parsers.chain import SourceParsers, TextChain

__all__ = ["SourceParsers", "TextChain"]
