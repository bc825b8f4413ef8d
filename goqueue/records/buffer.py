"""The byte containers that records functions read without copying."""

from typing import TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview
