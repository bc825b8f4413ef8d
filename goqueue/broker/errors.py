"""The error the core raises for a request it refuses, carrying the Kafka error code to answer."""

from kio.schema.errors import ErrorCode


class BrokerError(Exception):
    """A refusal with the Kafka error code and message that every front end reports."""

    def __init__(self, error_code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or error_code.name)
        self.error_code = error_code
        self.message = message
