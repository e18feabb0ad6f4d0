"""NATS security against real nats-servers: user/password and token auth, TLS (and mutual TLS) with a
throwaway CA, the CLI's one-line errors, and the per-role config of runbooks/security.md."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError

from agents.runtime import AgentRunner, Supervisor
from bus import Bus, BusSettings, ConsumerSpec, EmbeddedNats, NatsUnavailable, make_envelope
from bus.server import ServerSecurity
from domain.payloads import PAYLOADS, TopicRequested
from gymforge import config
from gymforge.app import build_agent, connect, start_budget
from teacher.server import TeacherServer
from tests.helpers.certs import Certs, make_certs
from tests.helpers.cli import gymforge

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "runbooks" / "security.md"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def password() -> str:
    return secrets.token_urlsafe(18)


async def round_trip(settings: BusSettings) -> None:
    """Publish an event through Bus and consume it back through a durable consumer."""
    bus = await Bus.connect(settings, types=PAYLOADS)
    try:
        env = make_envelope("topic.requested", TopicRequested(domain="security", count=2), producer="test")
        await bus.publish(env)
        await bus.ensure_consumer(ConsumerSpec(durable="sec", filter_subjects=["gf.topic.requested"]))
        sub = await bus.js.pull_subscribe_bind(durable="sec", stream=bus.settings.stream)
        [msg] = await sub.fetch(1, timeout=5)
        event = await bus.resolve(msg.data, "topic.requested")
        await msg.ack()
        assert event.id == env.id and event.payload.domain == "security"
    finally:
        await bus.close()


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gymforge: "), err
    assert "Traceback" not in err
    return lines[0]


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "token"])
async def test_right_credentials_publish_and_consume(tmp_path: Path, kind: str) -> None:
    secret = password()
    security = ServerSecurity(user="gf", password=secret) if kind == "user" else ServerSecurity(token=secret)
    async with EmbeddedNats(tmp_path / "js", port=0, security=security) as srv:
        conf = srv.generated_config
        assert conf.stat().st_mode & 0o077 == 0  # the password file is the owner's only
        assert secret not in " ".join(srv.command())  # never on the command line, where ps shows it
        creds = {"user": "gf", "password": secret} if kind == "user" else {"token": secret}
        await round_trip(BusSettings(url=srv.url, **creds))
        with pytest.raises(NatsUnavailable, match="refused the credentials"):
            await Bus.connect(BusSettings(url=srv.url), types=PAYLOADS)


@pytest.mark.parametrize("case", ["wrong password", "no credentials", "wrong user", "token instead"])
async def test_cli_says_in_one_line_that_credentials_were_refused(tmp_path: Path, case: str) -> None:
    secret = password()
    env = {
        "wrong password": {"GYMFORGE_NATS_USER": "gf", "GYMFORGE_NATS_PASSWORD": secret + "x"},
        "no credentials": {},
        "wrong user": {"GYMFORGE_NATS_USER": "nobody", "GYMFORGE_NATS_PASSWORD": secret},
        "token instead": {"GYMFORGE_NATS_TOKEN": secret},
    }[case]
    async with EmbeddedNats(tmp_path / "js", port=0, security=ServerSecurity(user="gf", password=secret)) as srv:
        bad = await gymforge("status", url=srv.url, data_dir=tmp_path / "data", env=env)
        good = await gymforge("status", url=srv.url, data_dir=tmp_path / "data",
                              env={"GYMFORGE_NATS_USER": "gf", "GYMFORGE_NATS_PASSWORD": secret})
    assert bad.code == 2, bad
    line = one_line_error(bad.err)
    assert f"NATS at {srv.url} refused the credentials (Authorization Violation)" in line
    assert secret not in bad.err + bad.out
    assert good.code == 0 and "stream: 0 events" in good.out, good


# --- TLS ------------------------------------------------------------------------------------------


async def test_tls_with_the_ca_works_end_to_end(tmp_path: Path, certs: Certs) -> None:
    secret = password()
    security = ServerSecurity(user="gf", password=secret, tls_cert=certs.server_cert, tls_key=certs.server_key)
    async with EmbeddedNats(tmp_path / "js", port=0, security=security) as srv:
        await round_trip(BusSettings(url=srv.url, user="gf", password=secret, tls_ca=str(certs.ca)))
        # the server really is TLS-only: a plain TCP client sees it ask for TLS
        info = await read_info(srv.host, srv.port)
        assert '"tls_required":true' in info
        status = await gymforge("status", url=srv.url, data_dir=tmp_path / "data",
                                env={"GYMFORGE_NATS_USER": "gf", "GYMFORGE_NATS_PASSWORD": secret,
                                     "GYMFORGE_NATS_TLS_CA": str(certs.ca)})
    assert status.code == 0 and "stream: 1 events" in status.out, status
    assert status.err == "", status.err  # not even asyncio's TLS noise


async def test_mutual_tls_needs_the_client_certificate(tmp_path: Path, certs: Certs) -> None:
    security = ServerSecurity(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_ca=certs.ca,
                              verify_clients=True)
    async with EmbeddedNats(tmp_path / "js", port=0, security=security) as srv:
        await round_trip(BusSettings(url=srv.url, tls_ca=str(certs.ca), tls_cert=str(certs.client_cert),
                                     tls_key=str(certs.client_key)))
        # TLS 1.3 reports the missing certificate after the handshake: an alert, or the server hanging up
        # (a close, a reset when our bytes were still unread, or a broken pipe while we were still writing)
        with pytest.raises(NatsUnavailable, match="CERTIFICATE_REQUIRED|Connection lost|Connection reset by peer|Broken pipe"):
            await Bus.connect(BusSettings(url=srv.url, tls_ca=str(certs.ca)), types=PAYLOADS)


@pytest.mark.parametrize("case", ["wrong CA", "no CA", "missing CA file"])
async def test_cli_says_in_one_line_what_is_wrong_with_tls(tmp_path: Path, certs: Certs, case: str) -> None:
    secret = password()
    security = ServerSecurity(user="gf", password=secret, tls_cert=certs.server_cert, tls_key=certs.server_key)
    ca = {"wrong CA": str(certs.other_ca), "no CA": "", "missing CA file": str(tmp_path / "nope.pem")}[case]
    async with EmbeddedNats(tmp_path / "js", port=0, security=security) as srv:
        r = await asyncio.wait_for(gymforge("status", url=srv.url, data_dir=tmp_path / "data", env={
            "GYMFORGE_NATS_USER": "gf", "GYMFORGE_NATS_PASSWORD": secret, "GYMFORGE_NATS_TLS_CA": ca}), 30)
    assert r.code == 2, r
    line = one_line_error(r.err)
    if case == "missing CA file":
        assert "cannot load the NATS TLS files" in line and "nope.pem" in line and "No such file" in line
    else:  # plaintext to a TLS-only server is no way in either: nats-py must verify the server
        assert f"TLS with NATS at {srv.url} failed (unable to get local issuer certificate)" in line
    assert secret not in r.err


async def test_a_ca_against_a_plaintext_server_is_refused(tmp_path: Path, certs: Certs) -> None:
    secret = password()
    async with EmbeddedNats(tmp_path / "js", port=0, security=ServerSecurity(user="gf", password=secret)) as srv:
        r = await gymforge("status", url=srv.url, data_dir=tmp_path / "data", env={
            "GYMFORGE_NATS_USER": "gf", "GYMFORGE_NATS_PASSWORD": secret, "GYMFORGE_NATS_TLS_CA": str(certs.ca)})
    assert r.code == 2, r
    assert "TLS is configured but NATS at" in one_line_error(r.err)


async def read_info(host: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        return (await asyncio.wait_for(reader.readline(), 5)).decode()
    finally:
        writer.close()


# --- the runbook's per-role config ----------------------------------------------------------------

ROLE_SUBJECTS = {  # role -> (a subject it produces, another role's subject it must not publish)
    "proposer": ("gf.topic.proposed", "gf.task.validated"),
    "verifier": ("gf.dataset.verified", "gf.topic.proposed"),
    "coder": ("gf.task.drafted", "gf.task.validated"),
    "debugger": ("gf.solve.requested", "gf.trajectory.accepted"),
    "solver": ("gf.trajectory.completed", "gf.trajectory.accepted"),
    "filter": ("gf.trajectory.accepted", "gf.solve.requested"),
    "sink": ("gf.dead.sink", "gf.topic.requested"),
}


def runbook_config(store: Path, certs: Certs) -> str:
    """The config block of runbooks/security.md, with this test's store and certificates."""
    blocks = re.findall(r"```conf\n(.*?)```", RUNBOOK.read_text(), re.DOTALL)
    [text] = [b for b in blocks if b.startswith("# gymforge-nats.conf")]
    replacements = {'"/var/lib/nats"': f'"{store}"', '"/etc/nats/tls/server.pem"': f'"{certs.server_cert}"',
                    '"/etc/nats/tls/server.key"': f'"{certs.server_key}"'}
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture
async def role_server(tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch
                      ) -> AsyncIterator[tuple[EmbeddedNats, dict[str, str]]]:
    # the server parses a variable's value as a config value: letters and digits, a letter first
    passwords = {user: "pw" + secrets.token_hex(16) for user in ["operator", *ROLE_SUBJECTS]}
    for user, pw in passwords.items():  # the config reads them from the server's environment
        monkeypatch.setenv(f"GF_{user.upper()}_PASSWORD", pw)
    conf = tmp_path / "gymforge-nats.conf"
    conf.write_text(runbook_config(tmp_path / "js", certs))
    async with EmbeddedNats(tmp_path / "js", port=0, config_file=conf, log_file=tmp_path / "nats.log") as srv:
        yield srv, passwords


def user_settings(srv: EmbeddedNats, user: str, pw: str, certs: Certs, **extra: object) -> config.Settings:
    return config.load({"nats_url": srv.url, "nats_user": user, "nats_password": pw, "nats_tls_ca": str(certs.ca),
                        **extra}, environ={})


async def raw_client(srv: EmbeddedNats, user: str, pw: str, certs: Certs, errors: list[str]) -> nats.NATS:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(srv.url, user=user, password=pw, tls=ssl.create_default_context(cafile=str(certs.ca)),
                              error_cb=on_error, allow_reconnect=False)


async def subject_counts(bus: Bus) -> dict[str, int]:
    info = await bus.js.stream_info(bus.settings.stream, subjects_filter="gf.>")
    return dict(info.state.subjects or {})


async def settled(bus: Bus, durable: str, subject: str, n: int, timeout: float = 60) -> tuple[dict[str, int], Any]:
    """Wait until `subject` holds n messages and the consumer has acked everything it took."""
    deadline = asyncio.get_running_loop().time() + timeout
    counts: dict[str, int] = {}
    info = None
    while asyncio.get_running_loop().time() < deadline:
        counts = await subject_counts(bus)
        with contextlib.suppress(NotFoundError):  # the consumer exists once the agent has started
            info = await bus.js.consumer_info(bus.settings.stream, durable)
        if counts.get(subject) == n and info and info.num_ack_pending == 0 and info.num_pending == 0:
            break
        await asyncio.sleep(0.2)
    return counts, info


async def test_runbook_config_runs_the_proposer_as_its_own_user(
    role_server: tuple[EmbeddedNats, dict[str, str]], certs: Certs, data_dir: Path
) -> None:
    srv, passwords = role_server
    async with TeacherServer() as teacher:
        proposer_s = user_settings(srv, "proposer", passwords["proposer"], certs, data_dir=data_dir,
                                   teacher_port=teacher.port)
        operator = await connect(user_settings(srv, "operator", passwords["operator"], certs))
        bus = await connect(proposer_s, name="proposer")
        budget = await start_budget(bus, proposer_s)  # the gf-config KV and an ordered consumer on gf.usage
        sup = Supervisor([AgentRunner(build_agent("proposer", bus, proposer_s, gate=budget.exhausted))], grace_s=2)
        task = asyncio.create_task(sup.run())
        try:
            await operator.publish(make_envelope("topic.requested", TopicRequested(domain="tabular data", count=2),
                                                 producer="test"))
            counts, info = await settled(operator, "proposer", "gf.topic.proposed", 2)
            assert counts.get("gf.topic.proposed") == 2 and counts.get("gf.usage", 0) >= 1, counts
            assert info.num_ack_pending == 0 and info.num_redelivered == 0  # its acks went through
            assert not any(k.startswith("gf.dead.") for k in counts)
        finally:
            sup.request_stop()
            await task
            await budget.stop()
            await bus.close()
            await operator.close()


async def test_runbook_users_publish_their_subjects_and_nothing_else(
    role_server: tuple[EmbeddedNats, dict[str, str]], certs: Certs
) -> None:
    srv, passwords = role_server
    operator = await connect(user_settings(srv, "operator", passwords["operator"], certs))
    try:
        for role, (own, foreign) in ROLE_SUBJECTS.items():
            errors: list[str] = []
            nc = await raw_client(srv, role, passwords[role], certs, errors)
            try:
                before = await subject_counts(operator)
                await nc.publish(own, b"probe")
                await nc.publish(foreign, b"forged")
                await nc.flush()
                for _ in range(50):
                    if errors:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await nc.close()
            after = await subject_counts(operator)
            assert after.get(own, 0) == before.get(own, 0) + 1, (role, own, after)
            assert after.get(foreign, 0) == before.get(foreign, 0), (role, foreign, after)
            assert errors == [f'nats: permissions violation for publish to "{foreign}"'], (role, errors)
        # a role cannot delete the event history
        errors = []
        nc = await raw_client(srv, "proposer", passwords["proposer"], certs, errors)
        try:
            with pytest.raises(nats.errors.TimeoutError):
                await nc.jetstream(timeout=1).delete_stream("GYMFORGE")
        finally:
            await nc.close()
        assert (await operator.js.stream_info("GYMFORGE")).config.name == "GYMFORGE"
    finally:
        await operator.close()
