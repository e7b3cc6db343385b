"""A shared daemon's gate, in-process: requests without a token from its auth socket are
refused before any servicer runs; with one, they are the token's uid whatever else they say."""

import os
import threading

import grpc
import pytest

from guild_common import handshake, home as homelib
from guild_common.pb import guild_pb2 as pb, guild_pb2_grpc
from guildctl.client import Client, obtain_token
from guildd import server
from guildd.daemon import Options

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a shared daemon runs as root")


@pytest.fixture
def shared_home(tmp_path):
    home = tmp_path / "home"
    ready = threading.Event()
    thread = threading.Thread(
        target=server.serve,
        args=(home,),
        kwargs={"handle_signals": False, "log_to_stderr": False, "ready": ready.set, "options": Options(shared=True)},
    )
    thread.start()
    assert ready.wait(20)
    yield home
    Client(home, autostart=False).shutdown_daemon()
    thread.join(20)
    assert not thread.is_alive()


def _stub(home):
    channel = grpc.insecure_channel(f"unix:{homelib.socket_connect_path(home)}")
    return channel, guild_pb2_grpc.GuildStub(channel)


def test_every_local_user_may_connect_to_a_shared_daemons_sockets(shared_home):
    for path in (homelib.socket_link(shared_home), homelib.auth_socket_path(homelib.socket_link(shared_home))):
        assert os.stat(path).st_mode & 0o777 == 0o666, path
    assert os.stat(shared_home).st_mode & 0o777 == 0o755


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(None, id="no token"),
        pytest.param(((handshake.METADATA_KEY, "forged"),), id="a token it never issued"),
        pytest.param((("user", "root"), ("uid", "0")), id="an identity claimed in metadata"),
    ],
)
def test_a_shared_daemon_refuses_requests_without_a_token_it_issued(shared_home, metadata):
    channel, stub = _stub(shared_home)
    with channel:
        with pytest.raises(grpc.RpcError) as e:
            stub.ListRuns(pb.ListRunsRequest(), metadata=metadata, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "no valid identity token" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:  # a streaming call is gated the same way
            list(stub.WatchRun(pb.WatchRunRequest(), metadata=metadata, timeout=10))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_token_from_the_auth_socket_is_the_callers_identity(shared_home):
    token = obtain_token(homelib.auth_socket_path(homelib.socket_connect_path(shared_home)))
    channel, stub = _stub(shared_home)
    with channel:
        info = stub.GetDaemonInfo(pb.GetDaemonInfoRequest(), metadata=((handshake.METADATA_KEY, token), ("user", "mallory")), timeout=10)
    assert info.user == "root"


def test_guildctls_client_identifies_itself(shared_home):
    client = Client(shared_home, autostart=False)
    assert client.list_runs() == ([], 0)
    assert client.daemon_info().user == "root"
