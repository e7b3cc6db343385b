"""The one error hierarchy, shared by daemon and client.

Each error names the gRPC status code it travels as. The daemon maps them to status codes in
one place (guildd.rpc), the client maps them back (guildctl.client), and guildctl's main()
prints one line and exits with the error's exit code.
"""


class GuildError(Exception):
    """Base of every error a user may see."""

    grpc_code = "UNKNOWN"
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(GuildError):
    grpc_code = "INVALID_ARGUMENT"


class NotFound(GuildError):
    grpc_code = "NOT_FOUND"


class AlreadyExists(GuildError):
    grpc_code = "ALREADY_EXISTS"


class FailedPrecondition(GuildError):
    grpc_code = "FAILED_PRECONDITION"


class PermissionDenied(GuildError):
    """Refused: not the caller's to do (another user's run, a daemon-wide setting), or a
    path or socket that isn't the user's. Its own exit code, so a script tells "not yours"
    from "not found" (1)."""

    grpc_code = "PERMISSION_DENIED"
    exit_code = 4


class Unauthenticated(GuildError):
    grpc_code = "UNAUTHENTICATED"


class ResourcesUnavailable(GuildError):
    grpc_code = "RESOURCE_EXHAUSTED"


class DaemonUnavailable(GuildError):
    grpc_code = "UNAVAILABLE"


ALL = [
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    ResourcesUnavailable,
    DaemonUnavailable,
]


def for_grpc_code(code_name: str) -> type[GuildError]:
    """The error class that travels as the gRPC status named `code_name`."""
    for cls in ALL:
        if cls.grpc_code == code_name:
            return cls
    return GuildError
