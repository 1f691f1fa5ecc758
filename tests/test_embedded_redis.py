"""The embedded server: private to its owner (a 0700 unix socket, no TCP port), start, reuse,
stop, persistence across restarts, the TCP mode's password, refused admin commands,
migration from the old TCP server, clear errors."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from app.embedded_redis import EmbeddedRedis, EmbeddedRedisError, module_paths, server_binary
from memories.connection import check_modules, connect
from memories.errors import ModuleMissing
from memories.profile import ProfileMemory
from memories.stack import open_memory
from tests.conftest import free_port, memory_settings

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def listens_on_tcp(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_by_default_it_listens_on_a_private_unix_socket_and_no_tcp_port(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    assert not server.status().running
    url = server.start()
    try:
        sock = server.socket_path
        assert sock is not None and url == f"unix://{sock}" and sock.parent == server.data_dir
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert mode(sock) == 0o700 and mode(server.data_dir) == 0o700  # owner only
        assert mode(server.conffile) == 0o600 and not server.password_file.exists()
        client = redis.Redis.from_url(url)
        assert client.config_get("port") == {"port": "0"}  # no TCP listener at all
        assert client.ping()
        status = server.status()
        assert status.running and status.url == url and status.socket == sock and status.port is None
        pid = status.pid
        assert server.start() == url and server.status().pid == pid  # a second start reuses it
    finally:
        assert server.stop() is True
    assert not server.status().running and not server.pidfile.exists()
    assert server.stop() is False


def test_a_process_of_another_user_cannot_connect(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("switching to another uid needs root; the permission bits are checked in the test above")
    # pytest's own temp root is 0700 already: serve from a directory `nobody` may walk into, so
    # only the server's own permissions stand between them.
    open_parent = Path(tempfile.mkdtemp(prefix="sam2voice-perm-"))
    open_parent.chmod(0o755)
    server = EmbeddedRedis(open_parent / "data")
    server.start()
    sock = server.socket_path
    assert sock is not None
    python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\n"
             "s.sendall(b'PING\\r\\n'); sys.exit(0 if s.recv(64).startswith(b'+PONG') else 1)\n")

    def as_nobody() -> int:
        return subprocess.run([python, "-c", probe, str(sock)], user=NOBODY, group=NOBODY, capture_output=True,
                              timeout=30, check=False, cwd="/").returncode

    try:
        assert as_nobody() == 13  # the kernel refuses them before Redis sees a byte
        # The control: with the permissions opened up, the same probe does get in, so the
        # refusal above is the permissions' doing, not the probe's.
        server.data_dir.chmod(0o755)
        sock.chmod(0o777)
        assert as_nobody() == 0
    finally:
        server.stop()
        shutil.rmtree(open_parent, ignore_errors=True)


def test_two_data_dirs_run_side_by_side_with_nothing_configured(tmp_path: Path) -> None:
    first, second = EmbeddedRedis(tmp_path / "ann"), EmbeddedRedis(tmp_path / "ben")
    try:
        a, b = redis.Redis.from_url(first.start()), redis.Redis.from_url(second.start())
        a.set("who", "ann")
        b.set("who", "ben")
        assert a.get("who") == b"ann" and b.get("who") == b"ben"  # two servers, two data sets
        assert first.status().pid != second.status().pid
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize("command", [("CONFIG", "SET", "dir", "/tmp"), ("MODULE", "LOAD", "/tmp/evil.so"),
                                     ("DEBUG", "SLEEP", "0"), ("CONFIG", "SET", "dbfilename", "x.rdb")])
def test_protected_configuration_stays_protected(embedded: EmbeddedRedis, command: tuple[str, ...]) -> None:
    client = redis.Redis.from_url(embedded.url)
    with pytest.raises(redis.ResponseError, match="protected|not allowed|immutable"):
        client.execute_command(*command)
    assert client.config_get("dir") == {"dir": str(embedded.data_dir)}


def test_a_tcp_port_needs_the_generated_password_and_refuses_admin_commands(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedRedis(tmp_path, port)
    url = server.start()
    try:
        password = server.password_file.read_text().strip()
        assert len(password) >= 32 and mode(server.password_file) == 0o600 and mode(server.conffile) == 0o600
        assert url == f"redis://default:{password}@127.0.0.1:{port}" and password not in server.display_url
        pid = server.status().pid
        assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()  # never on the command line
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).get("anything")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="guess").get("anything")
        client = redis.Redis.from_url(url)
        assert client.ping() and client.execute_command("FT._LIST") == []
        assert client.execute_command("MODULE", "LIST")  # the app's module check
        for admin in (("CONFIG", "SET", "maxmemory", "1"), ("ACL", "SETUSER", "eve", "on", ">x", "+@all"),
                      ("CONFIG", "GET", "requirepass"), ("MONITOR",), ("MODULE", "LOAD", "/tmp/x.so")):
            with pytest.raises(redis.ResponseError, match="NOPERM|permission|not allowed"):
                client.execute_command(*admin)
        assert server.start() == url  # reused, same password
    finally:
        server.stop()
    assert not listens_on_tcp(port)


def test_a_port_taken_by_another_server_is_a_clear_error(tmp_path: Path) -> None:
    owner = EmbeddedRedis(tmp_path / "owner", free_port())
    owner.start()
    try:
        intruder = EmbeddedRedis(tmp_path / "intruder", owner.port)  # same port, another data dir: not ours
        with pytest.raises(EmbeddedRedisError, match="taken by another server"):
            intruder.start()
    finally:
        owner.stop()


def test_an_old_tcp_server_keeps_its_data_and_becomes_private(tmp_path: Path) -> None:
    """A data dir whose server an older version started (port 6479-style TCP, no password, no
    config file): ``redis stop`` stops it, and the next start serves the same AOF privately."""
    data_dir, port = tmp_path / "redis", free_port()
    data_dir.mkdir()
    legacy = [str(server_binary()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
              "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "yes",
              "--pidfile", str(data_dir / "valkey.pid"), "--logfile", str(data_dir / "valkey.log")]
    for module in module_paths():
        legacy += ["--loadmodule", str(module)]

    def start_legacy() -> redis.Redis:
        subprocess.run(legacy, check=True, capture_output=True, timeout=30)
        old = redis.Redis(port=port)
        for _ in range(200):
            try:
                if old.ping():
                    return old
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("the legacy server did not answer")

    start_legacy().set("kept", "yes")
    server = EmbeddedRedis(data_dir)
    assert server.stop() is True and not listens_on_tcp(port)  # `redis stop` stops the old server

    start_legacy().set("kept-too", "yes")
    try:
        url = server.start()  # migrates: the old server is stopped, the private one serves its AOF
        assert url.startswith("unix://") and not listens_on_tcp(port)
        client = redis.Redis.from_url(url)
        assert client.get("kept") == b"yes" and client.get("kept-too") == b"yes"
    finally:
        server.stop()


def test_a_data_dir_too_deep_for_a_socket_path_uses_a_private_runtime_dir(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 4)
    server = EmbeddedRedis(deep)
    try:
        url = server.start()
        sock = server.socket_path
        assert sock is not None and not sock.is_relative_to(deep) and len(os.fsencode(sock)) <= 100
        assert mode(sock.parent) == 0o700 and sock.parent.stat().st_uid == os.getuid()
        assert redis.Redis.from_url(url).ping()
    finally:
        server.stop()


def test_a_data_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("creating a directory owned by another uid needs root")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(EmbeddedRedisError, match="belongs to another user"):
        EmbeddedRedis(theirs).start()


async def test_memories_survive_a_server_restart(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    server = EmbeddedRedis(tmp_path)
    settings = memory_settings()
    embed = (minilm, minilm.model_id, minilm.dims)
    stack = await open_memory(server.start(), settings, base_embeddings=embed)
    profile = stack.registry.get(ProfileMemory)
    assert profile is not None
    await profile.update("ada", {"name": "Ada", "timezone": "Europe/London"})
    await stack.aclose()
    server.stop()

    stack = await open_memory(server.start(), settings, base_embeddings=embed)
    try:
        restored = await stack.registry.get(ProfileMemory).get("ada")  # type: ignore[union-attr]
        assert restored is not None and restored.name == "Ada" and restored.timezone == "Europe/London"
    finally:
        await stack.aclose()
        server.stop()


async def test_a_server_without_search_or_json_is_named_in_the_error(tmp_path: Path) -> None:
    port = free_port()
    bare = subprocess.Popen([str(server_binary()), "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(tmp_path), "--save", ""], stdout=subprocess.DEVNULL)
    try:
        client = connect(f"redis://127.0.0.1:{port}")
        for _ in range(100):
            try:
                await client.ping()
                break
            except Exception:
                import asyncio

                await asyncio.sleep(0.05)
        with pytest.raises(ModuleMissing, match="Search") as caught:
            await check_modules(client, f"redis://127.0.0.1:{port}")
        assert "REDIS_URL" in str(caught.value)
        await client.aclose()
    finally:
        bare.terminate()
        bare.wait(10)


async def test_the_companion_runs_whole_on_a_tcp_port_with_its_password(tmp_path: Path, minilm) -> None:  # type: ignore[no-untyped-def]
    """The TCP mode's ACL leaves out only admin commands: memory, the checkpointer, the tools'
    scripts, statistics, export and forget all run as the password's user."""
    from tests.companion_fixtures import fresh_namespace, open_rig

    server = EmbeddedRedis(tmp_path / "redis", free_port())
    url = server.start()
    try:
        async with open_rig(url, minilm, fresh_namespace(), tmp_path) as rig:
            session = rig.session("tia", seed="1")
            first = await session.send("can you break cleaning my room into steps")  # the plan's Lua scripts
            second = await session.send("nah that didn't help, still stuck")
            assert not first.degraded and not second.degraded and first.tool == "create_microsteps"
            assert second.settled and second.settled[0]["outcome"] != "pending"
            data = await rig.person_data().export("tia")
            assert data["interventions"] and data["sessions"] and data["coaching"]["plan"]
            await rig.person_data().forget("tia")
            assert not (await rig.person_data().export("tia"))["interventions"]
    finally:
        server.stop()
