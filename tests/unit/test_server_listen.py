"""guildd's socket (guildd.server): when it can't be bound, the error says the kernel's reason,
which gRPC's own error leaves out."""

import asyncio

import pytest

from guild_common import errors
from guildd import server

LONG = "d" * 120  # past a Unix socket path's limit (108 bytes)


@pytest.mark.parametrize(
    "where, reason",
    [("missing/guildd.sock", "No such file or directory"), (f"{LONG}/guildd.sock", "AF_UNIX path too long")],
    ids=["missing-dir", "path-too-long"],
)
def test_a_socket_that_cannot_be_bound_says_why(tmp_path, where, reason):
    bind = tmp_path / where

    async def listen():
        grpc_server = server.grpc.aio.server()
        try:
            server._listen(grpc_server, bind)
        finally:
            await grpc_server.stop(0)

    with pytest.raises(errors.FailedPrecondition) as e:
        asyncio.run(listen())
    assert str(e.value) == f"cannot listen on {bind}: {reason}"


def test_a_bind_that_works_leaves_nothing_behind(tmp_path):
    bind = tmp_path / "guildd.sock"
    assert "a plain bind could" in server.bind_error(bind)
    assert not bind.exists()


def test_a_path_taken_by_a_file_says_so(tmp_path):
    bind = tmp_path / "guildd.sock"
    bind.write_text("not a socket")
    assert server.bind_error(bind) == "Address already in use"
    assert bind.read_text() == "not a socket"  # never removed
