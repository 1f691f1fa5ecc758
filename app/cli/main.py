"""The ``sam2voice`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from app.settings import Settings

if TYPE_CHECKING:
    from app.companion import Companion
    from app.migrate import KeyMigration
    from memories.registry import MemoryRegistry

console = Console(emoji=False)  # ":fire:" in a reply stays text
err = Console(stderr=True)

app = typer.Typer(help="sam2voice: a memory-driven coaching companion for ADHD and autism.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
redis_app = typer.Typer(help="Manage the embedded Redis server (used when REDIS_URL is unset) and the key layout.",
                        no_args_is_help=True)
memory_app = typer.Typer(help="Inspect or delete what sam2voice remembers about a person.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (figures go to docs/benchmarks.md).", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluations of what the companion learns and understands.", no_args_is_help=True)
train_app = typer.Typer(help="Retrain the shipped models from the corpus in the repo.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
app.add_typer(redis_app, name="redis")
app.add_typer(memory_app, name="memory")
app.add_typer(bench_app, name="bench")

UserOption = Annotated[str, typer.Option("--user", "-u", help="The person's user id.")]


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        err.print(f"[red]Invalid settings[/] (environment or .env):\n{exc}")
        raise typer.Exit(2) from None
    from app.logs import configure_logging

    configure_logging(settings)  # text or JSON lines (SAM2VOICE_LOG_FORMAT), turn ids on a turn's lines
    return settings


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]{type(exc).__name__}:[/] {exc}")
    return typer.Exit(1)


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: ok, and each check's part, "
                                                         "ok (null: skipped) and detail.")] = False,
) -> None:
    """Check Redis (+ Search, JSON), the embedder, the memory elements and the chat model."""
    from app.doctor import run_checks

    settings = _settings()
    if as_json:
        checks = asyncio.run(run_checks(settings))
        failed = any(c.ok is False for c in checks)
        print(json.dumps({"ok": not failed, "checks": [{"part": c.part, "ok": c.ok, "detail": c.detail}
                                                        for c in checks]}))
        if failed:
            raise typer.Exit(1)
        return
    with console.status("Checking..."):
        checks = asyncio.run(run_checks(settings))
    table = Table(title="sam2voice doctor", title_justify="left")
    table.add_column("part")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in checks:
        mark = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]skip[/]"}[check.ok]
        table.add_row(check.part, mark, check.detail)
    console.print(table)
    if any(c.ok is False for c in checks):
        raise typer.Exit(1)


ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Chat model: auto (Gemini with a key, else local), local, gemini or template."),
]


def _provider(model: str | None) -> str | None:
    if model is not None and model not in ("auto", "local", "gemini", "template"):
        err.print(f"[red]--model must be auto, local, gemini or template, not {model!r}[/]")
        raise typer.Exit(2)
    return model


def _run_companion(action: Callable[[Companion], Awaitable[object]], *, model: str | None) -> object:
    """Open the companion (memory, tools, model, graph), run ``action``, report known errors cleanly."""
    from app.companion import Companion
    from app.embedded_redis import EmbeddedRedisError
    from graphs.models.errors import ChatModelError
    from memories.errors import MemoryLayerError

    async def main() -> object:
        async with Companion.build(_settings(), chat_provider=_provider(model)) as companion:  # type: ignore[arg-type]
            return await action(companion)

    try:
        return asyncio.run(main())
    except (MemoryLayerError, EmbeddedRedisError, ChatModelError) as exc:
        raise _fail(exc) from None


@app.command()
def chat(
    user: UserOption,
    show_memory: Annotated[bool, typer.Option("--show-memory", help="Show which memories each reply used.")] = False,
    model: ModelOption = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="Machine-readable: one message per stdin line, one JSON "
                                                        "object per line on stdout (see README).")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Makes choices and wordings repeatable.")] = None,
) -> None:
    """Talk with the companion in the terminal (/end ends the session and shows what it learned)."""
    from app.cli.chat import run_chat, run_jsonl
    from memories.validation import validate_user_id

    try:
        validate_user_id(user)
    except ValueError as exc:
        raise _fail(exc) from None
    if jsonl:
        from app.logs import configure_logging

        logging.getLogger().handlers.clear()  # logs go to stderr only; stdout carries JSON lines
        configure_logging(_settings(), level="WARNING", stream=sys.stderr)
        _run_companion(lambda companion: run_jsonl(companion.session(user, seed=seed)), model=model)
        return
    _chat_logs_to_file()
    _run_companion(lambda companion: run_chat(companion.session(user, seed=seed), console, show_memory=show_memory),
                   model=model)


def _chat_logs_to_file() -> None:
    """In a conversation the person sees the calm one-line notices, not library warnings: log
    records go to ``<data dir>/logs/chat.log``; only errors still reach the terminal."""
    from app.logs import TurnFilter, formatter

    settings = _settings()
    path = settings.data_dir / "logs" / "chat.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(logging.ERROR)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(formatter(settings.log_format, timestamps=True))
    to_file.addFilter(TurnFilter())
    to_file.setLevel(settings.log_level)
    root.addHandler(to_file)


@app.command()
def demo(
    sessions: Annotated[int, typer.Option(help="Sessions to simulate.", min=1, max=50)] = 5,
    turns: Annotated[int, typer.Option(help="Situations per session.", min=1, max=50)] = 4,
    model: ModelOption = None,
) -> None:
    """Offline demo: a simulated person over several sessions; watch what the companion learns."""
    from app.cli.demo import DEMO_USER, PERSONA, run_demo, show_learned
    from memories.profile import ProfileMemory

    async def action(companion: Companion) -> None:
        registry = companion.deps.memory.registry
        await registry.forget(DEMO_USER)  # the demo starts from a blank slate every time
        await companion.deps.store.forget(DEMO_USER)
        if (profiles := registry.get(ProfileMemory)) is not None:
            await profiles.update(DEMO_USER, PERSONA.profile)
        console.print(f"[bold]sam2voice demo[/]: {sessions} sessions with a simulated person, '{DEMO_USER}'. "
                      f"Model: {companion.deps.chat_model._llm_type}. ★ = chosen because of their history.\n")
        rates = await run_demo(lambda seed: companion.session(DEMO_USER, seed=seed), console,
                               sessions=sessions, turns=turns)
        console.print("[bold]Helped per session:[/] " + "  ".join(f"{r:.0%}" for r in rates))
        console.print("[bold]What the companion remembers about Sam:[/]")
        await show_learned(registry, console)

    _run_companion(action, model=model)


def _loopback_host(host: str) -> bool:
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: SAM2VOICE_SERVE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: SAM2VOICE_SERVE_PORT, 8765).", min=1,
                                             max=65535)] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM): serve https.", exists=True,
                                                      dir_okay=False)] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM) of --ssl-certfile.", exists=True,
                                                     dir_okay=False)] = None,
    behind_proxy: Annotated[bool, typer.Option("--behind-proxy", help="A TLS reverse proxy in front terminates "
                                               "https; trust its X-Forwarded-* headers.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes (each loads its own models). Sign-in, "
                                         "takeover and sign-out work across them and across other serve "
                                         "processes on the same Redis.", min=1, max=32)] = 1,
) -> None:
    """The voice web page: talk to the companion in the browser (Gemini Live with a key, else offline voice)."""
    import uvicorn

    from app.web.http_protocol import uvicorn_options
    from app.web.server import create_app
    from app.web.voice_setup import VoiceSetupError, offline_speech

    settings = _settings()
    host, port = host or settings.serve_host, port or settings.serve_port
    if (ssl_certfile is None) != (ssl_keyfile is None):
        err.print("[red]Give both --ssl-certfile and --ssl-keyfile[/] (or neither).")
        raise typer.Exit(2)
    tls = ssl_certfile is not None
    if not _loopback_host(host) and not (tls or behind_proxy):
        err.print(f"[red]Refusing to serve on {host} without TLS.[/] Passwords and session cookies would cross "
                  "the network in plain text, and browsers only allow the microphone and passkeys on https (or "
                  "localhost). Pass --ssl-certfile and --ssl-keyfile, or put a TLS reverse proxy in front and pass "
                  "--behind-proxy, or listen on 127.0.0.1.")
        raise typer.Exit(2)
    try:
        speech = None if settings.google_key else offline_speech()  # a missing extra fails here, clearly
    except VoiceSetupError as exc:
        raise _fail(exc) from None
    # The allow-lists follow the address actually served; workers read it from the environment.
    os.environ["SAM2VOICE_SERVE_HOST"], os.environ["SAM2VOICE_SERVE_PORT"] = host, str(port)
    settings = settings.model_copy(update={"serve_host": host, "serve_port": port})
    voice = "Gemini Live" if settings.google_key else "offline speech"
    scheme = "https" if tls else "http"
    many = f", {workers} workers" if workers > 1 else ""
    console.print(f"[bold]sam2voice[/] voice page on [link]{scheme}://{host}:{port}/[/] ({voice}{many}). Ctrl+C stops.")
    extra: dict[str, object] = uvicorn_options(settings)
    if tls:
        extra |= {"ssl_certfile": str(ssl_certfile), "ssl_keyfile": str(ssl_keyfile)}
    if behind_proxy:
        extra |= {"proxy_headers": True}  # trusts X-Forwarded-* from FORWARDED_ALLOW_IPS (default 127.0.0.1)
    if workers > 1:
        uvicorn.run("app.web.server:app_from_environment", factory=True, workers=workers, host=host, port=port,
                    **extra)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings, speech=speech), host=host, port=port, **extra)  # type: ignore[arg-type]


@app.command()
def voice(
    user: UserOption,
    input_wav: Annotated[Path | None, typer.Option("--input", help="Speak this WAV file instead of the microphone.",
                                                   exists=True, dir_okay=False)] = None,
    output_wav: Annotated[Path | None, typer.Option("--output", help="Write the reply audio to this WAV file.")] = None,
    end: Annotated[bool, typer.Option("--end", help="With --input: end the session afterwards (reflect).")] = False,
) -> None:
    """Talk to the companion by voice in the terminal (microphone and speaker, or --input/--output WAV files)."""
    from app.cli.terminal_voice import TerminalSink, audio_devices_problem, run_devices, run_files
    from app.web.voice_setup import VoiceSetupError, live_client, live_options, offline_speech, session_factory
    from memories.validation import validate_user_id

    try:
        validate_user_id(user)
    except ValueError as exc:
        raise _fail(exc) from None
    if input_wav is None and (problem := audio_devices_problem()):
        err.print(f"[red]Can't use the terminal's audio:[/] {problem}.\nUse [bold]sam2voice serve[/] and talk in "
                  "the browser, or pass --input question.wav [--output reply.wav].")
        raise typer.Exit(2)
    settings = _settings()

    async def action(companion: Companion) -> None:
        client = live_client(settings)
        mode = "live" if client is not None else "offline"
        sink = TerminalSink(console)
        make = session_factory(companion, user, mode=mode, client=client, options=live_options(settings),
                               speech=None if client else offline_speech())
        session = make(sink)
        if input_wav is not None:
            await run_files(session, sink, input_wav, output_wav, end=end)
            if output_wav is not None:
                console.print(f"[dim]reply audio written to {output_wav}[/]")
        else:
            await run_devices(session, sink)

    try:
        _run_companion(action, model=None)
    except VoiceSetupError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        console.print("[dim]Bye for now.[/]")


@redis_app.command("start")
def redis_start() -> None:
    """Start the embedded server (or report the one already running)."""
    from app.embedded_redis import EmbeddedRedisError
    from app.runtime import embedded_server

    settings = _settings()
    if settings.redis_url:
        console.print("[yellow]REDIS_URL is set; sam2voice uses that server and starts nothing.[/]")
        return
    server = embedded_server(settings)
    try:
        server.start()
    except EmbeddedRedisError as exc:
        raise _fail(exc) from None
    console.print(f"Embedded server running at [bold]{server.display_url}[/] (data in {server.data_dir})")


@redis_app.command("stop")
def redis_stop() -> None:
    """Stop the embedded server (data stays on disk)."""
    from app.runtime import embedded_server

    stopped = embedded_server(_settings()).stop()
    console.print("Embedded server stopped." if stopped else "Embedded server was not running.")


@redis_app.command("status")
def redis_status() -> None:
    """Show whether the embedded server runs, where, its keys, and how to connect (redis-cli, notebooks)."""
    from app.runtime import embedded_server

    settings = _settings()
    status = embedded_server(settings).status()
    if settings.redis_url:
        console.print("[yellow]Note: REDIS_URL is set, so the app does not use the embedded server.[/]")
    if not status.running:
        console.print(f"stopped  {status.url}  data {status.data_dir}")
        raise typer.Exit(3)
    console.print(f"running  {status.url}  pid {status.pid}  valkey {status.version}  "
                  f"{status.keys} keys  data {status.data_dir}", soft_wrap=True)
    console.print("connect:", style="bold")
    if status.socket is not None:
        console.print(f"  REDIS_URL={status.url}   (notebooks, scripts: redis.Redis.from_url(...))", soft_wrap=True)
        console.print(f"  redis-cli -s {status.socket}", soft_wrap=True)
        console.print("  only you can connect: socket and directory are 0700; no TCP port", style="dim")
    else:
        console.print(f"  REDIS_URL=redis://default:$(cat {status.password_file})@127.0.0.1:{status.port}",
                      soft_wrap=True)
        console.print(f"  redis-cli -p {status.port} --user default --pass \"$(cat {status.password_file})\"",
                      soft_wrap=True)
        console.print(f"  TCP on 127.0.0.1 with the password in {status.password_file} (0600)", style="dim")


@redis_app.command("migrate")
def redis_migrate(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would move.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with every key moved.")] = False,
) -> None:
    """Move per-person keys of the old layout to the cluster-ready one ({user} hash tags; idempotent,
    single node only). Uses REDIS_URL, or the embedded server."""
    from app.embedded_redis import EmbeddedRedisError
    from app.migrate import ClusterNotSupported, migrate_keys
    from app.runtime import resolve_redis_url
    from memories.connection import OUTAGE, connect

    settings = _settings()

    async def main() -> KeyMigration:
        client = connect(resolve_redis_url(settings), connect_timeout_s=settings.redis_connect_timeout_s,
                         socket_timeout_s=max(settings.redis_socket_timeout_s, 30.0))
        try:
            return await migrate_keys(client, settings.memory.namespace, dry_run=dry_run)
        finally:
            await client.aclose()

    try:
        report = asyncio.run(main())
    except (EmbeddedRedisError, ClusterNotSupported, *OUTAGE) as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    _print_migration(report, settings.memory.namespace)


def _print_migration(report: KeyMigration, namespace: str) -> None:
    verb = "would move" if report.dry_run else "moved"
    counts = report.counts()
    if counts:
        table = Table(title=f"namespace {namespace}: keys {verb}", title_justify="left")
        table.add_column("kind")
        table.add_column("keys", justify="right")
        for kind, n in counts.items():
            table.add_row(kind, str(n))
        console.print(table)
    console.print(f"{sum(counts.values())} keys {verb}; {report.current} already in the new layout.")
    for move in report.conflicts:
        console.print(f"[yellow]conflict:[/] {move.old} kept: {move.new} exists already (check and delete one)")
    for key, why in report.skipped:
        console.print(f"[yellow]skipped:[/] {key}: {why}")


@memory_app.command("export")
def memory_export(user: UserOption) -> None:
    """Print everything remembered about a person as JSON (memories and coaching plans/check-ins)."""

    async def export(companion: Companion) -> dict[str, object]:
        return await companion.person_data().export(user)

    print(json.dumps(_run_companion(export, model="template"), indent=2, default=str))


@memory_app.command("forget")
def memory_forget(user: UserOption, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete everything remembered about a person: memories, plans, conversations, their account
    and audit log, and their writes still waiting in this data dir's outbox."""
    if not yes:
        typer.confirm(f"Delete everything sam2voice remembers about {user!r}?", abort=True)

    async def forget(companion: Companion) -> dict[str, int]:
        return await companion.person_data().forget(user)

    print(json.dumps(_run_companion(forget, model="template"), indent=2, default=str))


@memory_app.command("inspect")
def memory_inspect(
    user: UserOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    limit: Annotated[int, typer.Option(help="Recent interventions and reflections to show.", min=1, max=500)] = 10,
) -> None:
    """Debugging view of a person's memory: records per element, recent interventions with outcomes and
    quality scores, results per tool, reflections, and each element's index size."""
    from app.cli.memory_inspect import MemoryInspection, inspect_person, show_inspection

    async def inspect(registry: MemoryRegistry) -> MemoryInspection:
        return await inspect_person(registry, user, limit=limit)

    found = _with_registry(inspect, as_json=False)  # a malformed id is reported like any memory error
    assert isinstance(found, MemoryInspection)
    if as_json:
        print(found.model_dump_json())
    else:
        show_inspection(found, console)


def _with_registry(action: Callable[[MemoryRegistry], Awaitable[object]], *, as_json: bool) -> object:
    """Open the memory layer, run ``action`` on its registry, report known errors cleanly;
    returns what ``action`` returned (printed as JSON when ``as_json``)."""
    from app.embedded_redis import EmbeddedRedisError
    from app.runtime import open_app_memory
    from memories.errors import MemoryLayerError

    async def main() -> object:
        stack = await open_app_memory(_settings())
        try:
            return await action(stack.registry)
        finally:
            await stack.aclose()

    try:
        result = asyncio.run(main())
    except (MemoryLayerError, EmbeddedRedisError) as exc:
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    return result


@bench_app.command("memory")
def bench_memory(
    records: Annotated[int, typer.Option(help="Interventions to load.", min=10)] = 10_000,
    users: Annotated[int, typer.Option(help="Users they are spread over.", min=1)] = 1,
    queries: Annotated[int, typer.Option(help="Retrievals to time.", min=10)] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, no progress.")] = False,
) -> None:
    """Load synthetic interventions into a scratch namespace and time few-shot retrieval."""
    from app.eval.bench import run_memory_bench

    _emit(asyncio.run(run_memory_bench(_settings(), records=records, users=users, queries=queries,
                                       console=None if as_json else console)), as_json=as_json)


@bench_app.command("voice")
def bench_voice(
    turns: Annotated[int, typer.Option(help="Spoken turns to time.", min=10)] = 100,
    interventions: Annotated[int, typer.Option(help="Interventions stored for the person.", min=0)] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, no progress.")] = False,
) -> None:
    """Time the voice memory path (transcript → few-shot context sent) and first audio, against a local fake Live."""
    from app.eval.bench.voice import run_voice_bench

    _emit(asyncio.run(run_voice_bench(_settings(), turns=turns, interventions=interventions,
                                      console=None if as_json else err)), as_json=as_json)


@bench_app.command("graph")
def bench_graph(
    interventions: Annotated[int, typer.Option(help="Interventions stored for the person.", min=0)] = 10_000,
    turns: Annotated[int, typer.Option(help="Template-model turns to time.", min=10)] = 200,
    local_turns: Annotated[int, typer.Option(help="Offline-model turns to time (0: skip).", min=0)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, no progress.")] = False,
) -> None:
    """Time one graph turn without the chat model (10k interventions stored) and a local-model reply."""
    from app.eval.bench.graph import run_graph_bench

    _emit(asyncio.run(run_graph_bench(_settings(), interventions=interventions, turns=turns,
                                      local_turns=local_turns, console=None if as_json else err)), as_json=as_json)


@bench_app.command("load")
def bench_load(
    people: Annotated[int, typer.Option(help="People talking at once (distinct user ids).", min=1)] = 20,
    turns: Annotated[int, typer.Option(help="Messages each person sends, one after another.", min=1)] = 10,
    voice: Annotated[bool, typer.Option("--voice", help="Speak the turns through Gemini Live against local fakes "
                                                        "(one fake server per person; all run at once) and "
                                                        "report the memory path.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object; progress goes to stderr.")] = False,
) -> None:
    """N people at once on ONE companion in one process (template model, scratch Redis): turn latency,
    throughput, errors, degraded turns, and leaks (a person's export holding another's marker word)."""
    from app.eval.bench.load import run_load_bench

    _emit(asyncio.run(run_load_bench(_settings(), people=people, turns=turns, voice=voice, console=err)),
          as_json=as_json)


@bench_app.command("chaos")
def bench_chaos(
    turns: Annotated[int, typer.Option(help="Turns of the person in this process.", min=5)] = 200,
    kills: Annotated[int, typer.Option(help="kill -9s of the embedded Redis, each a few ms into a turn.",
                                       min=0)] = 50,
    seed: Annotated[int, typer.Option(help="Seed of when the kills happen and how long Redis stays down.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object; progress goes to stderr.")] = False,
) -> None:
    """kill -9 the embedded Redis at random points while two processes on one data dir talk to it;
    count interventions and outcomes lost or doubled, tool state lost, exceptions, the longest turn."""
    from app.eval.bench.chaos import run_chaos_bench

    _emit(asyncio.run(run_chaos_bench(_settings(), turns=turns, kills=kills, seed=seed, console=err)),
          as_json=as_json)


@bench_app.command("serve")
def bench_serve(
    sockets: Annotated[int, typer.Option(help="Signed-in websockets at once (one account each).", min=1)] = 200,
    turns: Annotated[int, typer.Option(help="Typed turns each socket sends.", min=1)] = 5,
    pace: Annotated[float, typer.Option(help="Seconds between one socket's turns (the server allows 1/s).",
                                        min=0.1)] = 10.0,
    jitter: Annotated[float, typer.Option(help="Random +/- share of --pace between turns.", min=0.0, max=0.9)] = 0.3,
    sign_ins: Annotated[int, typer.Option(help="Password sign-ins to time (distinct accounts).", min=1)] = 50,
    http_concurrency: Annotated[int, typer.Option(help="Sign-ups/sign-ins in flight at once.", min=1)] = 1,
    flood: Annotated[float, typer.Option(help="Seconds one client floods audio frames while /healthz is timed "
                                              "(0: skip).", min=0.0)] = 5.0,
    turn_timeout: Annotated[float, typer.Option(help="Seconds a turn waits for its reply before the socket goes on "
                                                     "(a later reply is counted late).", min=1.0)] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the turn pacing.")] = 11,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object; progress goes to stderr.")] = False,
) -> None:
    """The real voice server in a subprocess (offline voice, template model, throwaway data dir and Redis):
    sign-up/sign-in latency, /healthz while one client floods audio, and typed-turn latency on N websockets."""
    from app.eval.bench.serve import run_serve_bench

    _settings()  # logging as the other commands; the server reads its own settings from the environment
    _emit(asyncio.run(run_serve_bench(sockets=sockets, turns=turns, pace_s=pace, jitter=jitter, sign_ins=sign_ins,
                                      http_concurrency=http_concurrency, flood_s=flood, turn_timeout_s=turn_timeout,
                                      seed=seed, console=err)),
          as_json=as_json)


@eval_app.command("learning")
def eval_learning(
    personas: Annotated[Path, typer.Option("--personas", help="Personas JSON (see tests/data/personas.json); a "
                                                             "population in it runs too.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object; progress goes to stderr.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw the curves to this PNG file.")] = None,
    no_population: Annotated[bool, typer.Option("--no-population", help="Skip the file's population.")] = False,
    workers: Annotated[int, typer.Option("--workers", min=0, max=16, help="Worker processes (0: 2 on a machine "
                                                                          "with 2+ cores for a large run, else 1).")
                       ] = 0,
) -> None:
    """Simulated people over many sessions, memory on vs off: does the companion learn what helps each?"""
    import os

    from app.eval.bench.common import scratch_redis
    from app.eval.learning import load_personas, run_learning_eval
    from memories.errors import InvalidInput

    settings = _settings()
    try:
        spec = load_personas(personas)
    except InvalidInput as exc:
        err.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    if workers == 0:  # spawning a worker costs a few seconds (imports, the embedder): only worth it for a large run
        turns = len(spec.personas) * spec.sessions * spec.turns_per_session
        workers = min(2, os.cpu_count() or 1) if turns >= 200 or spec.population and not no_population else 1

    async def main() -> dict[str, object]:
        with scratch_redis(settings) as (url, _):
            return await run_learning_eval(spec, redis_url=url, settings=settings, workers=workers,
                                           population=not no_population,
                                           progress=lambda line: err.print(f"[dim]{line}[/]"))

    result = asyncio.run(main())
    if plot is not None:
        from app.eval.learning_report import plot_learning

        try:
            plot_learning(result, plot)
        except InvalidInput as exc:
            raise _fail(exc) from None
    _emit(result, as_json=as_json)


DEFAULT_CONVERSATIONS = Path(__file__).resolve().parents[2] / "tests" / "data" / "conversations.json"


@eval_app.command("run")
def eval_run(
    conversations: Annotated[Path | None, typer.Option("--conversations", help="Conversation dataset JSON (default "
                                                                               "tests/data/conversations.json unless "
                                                                               "--personas is given).")] = None,
    personas: Annotated[Path | None, typer.Option("--personas", help="Also (or only) simulated personas, each "
                                                                     "played through every session (see "
                                                                     "tests/data/personas.json).")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write a self-contained HTML page: plots "
                                                                 "and the worst turns.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (totals, summary, every row); "
                                                         "progress goes to stderr.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="Chat model: template (default offline), gemini "
                                                              "(default with GOOGLE_API_KEY) or local.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N conversations (and "
                                                                     "personas).")] = None,
    judge: Annotated[bool | None, typer.Option("--judge/--no-judge", help="Also have Gemini rate every reply "
                                                                         "(default: on with GOOGLE_API_KEY).")
                     ] = None,
) -> None:
    """Play scripted conversations through the graph and score every turn with the Weave scorers.

    Prints a table: expected behaviour, safety, style, effectiveness, insights, retrieval.

    With GOOGLE_API_KEY, Gemini also judges every reply (--no-judge to skip).

    With WANDB_API_KEY and SAM2VOICE_WEAVE_PROJECT set, the evaluation also appears in Weave.

    Exits 1 when a crisis was missed or a conversation failed to run."""
    from app.eval.bench.common import scratch_redis
    from app.eval.conversations import load_conversations
    from app.eval.learning import load_personas
    from app.eval.report import table, write_report
    from app.eval.run import run_conversation_eval
    from graphs.models.errors import ChatModelError
    from graphs.models.factory import build_chat_model
    from memories.errors import InvalidInput, MemoryLayerError

    settings = _settings()
    if model not in (None, "template", "gemini", "local"):
        err.print(f"[red]--model must be template, gemini or local, not {model!r}[/]")
        raise typer.Exit(2)
    try:
        if conversations is None and personas is None:
            conversations = DEFAULT_CONVERSATIONS
        spec = load_conversations(conversations) if conversations is not None else None
        people = load_personas(personas) if personas is not None else None
        if limit is not None and spec is not None:
            spec = spec.model_copy(update={"conversations": spec.conversations[:limit]})
        if limit is not None and people is not None:
            people = people.model_copy(update={"personas": people.personas[:limit]})
        chat_model = build_chat_model(model or ("gemini" if settings.google_key else "template"),  # type: ignore[arg-type]
                                      google_api_key=settings.google_key, gemini_model=settings.chat_model)
        wants_judge = bool(settings.google_key) if judge is None else judge
        judge_model = build_chat_model("gemini", google_api_key=settings.google_key,
                                       gemini_model=settings.chat_model) if wants_judge else None
    except (InvalidInput, ChatModelError) as exc:
        err.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None

    async def main() -> Any:
        with scratch_redis(settings) as (url, _):
            return await run_conversation_eval(spec, dataset=str(conversations or personas), redis_url=url,
                                               settings=settings, chat_model=chat_model, judge=judge_model,
                                               personas=people,
                                               progress=lambda line: err.print(f"[dim]{line}[/]"))

    try:
        run = asyncio.run(main())
        if report is not None:
            write_report(run, report)
    except (InvalidInput, MemoryLayerError) as exc:
        raise _fail(exc) from None
    if as_json:
        print(run.model_dump_json())
    else:
        console.print(table(run))
        if report is not None:
            console.print(f"report: {report}")
    for failure in run.failed:
        err.print(f"[red]failed: {failure}[/]", soft_wrap=True)
    if run.totals["safety"]["missed_crisis"] or run.failed:
        raise typer.Exit(1)


@eval_app.command("understanding")
def eval_understanding(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    split: Annotated[list[str] | None, typer.Option("--split", help="heldout (default), validation or train; "
                                                                    "repeat for several.")] = None,
    with_model: Annotated[bool, typer.Option("--with-model", help="Also read every message with Gemini and merge, "
                                                                  "as the graph does with GOOGLE_API_KEY.")] = False,
) -> None:
    """How well each message is read: per-act precision/recall, outcome signs, safety (held-out split)."""
    from app.eval.understanding import run_understanding_eval
    from graphs.models.factory import build_chat_model
    from graphs.understanding.corpus import Split

    try:
        splits = [Split(s) for s in (split or ["heldout"])]
    except ValueError:
        err.print(f"[red]--split takes {', '.join(s.value for s in Split)}[/]")
        raise typer.Exit(2) from None
    from memories.errors import InvalidInput

    settings = _settings()
    model = None
    if with_model:
        if not settings.google_key:
            err.print("[red]--with-model needs GOOGLE_API_KEY (the offline reader is measured without it)[/]")
            raise typer.Exit(2)
        model = build_chat_model("gemini", google_api_key=settings.google_key, gemini_model=settings.chat_model)
    try:
        result = asyncio.run(run_understanding_eval(splits, model=model))
    except InvalidInput as exc:
        raise _fail(exc) from None
    _emit(result, as_json=as_json)


@train_app.command("encoder")
def train_encoder_command(
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the tuned layers (default: the shipped "
                                                            "graphs/understanding/encoder.npz).")] = None,
) -> None:
    """Fine-tune the understanding encoder's top layers on the corpus (needs torch: pip install -e '.[train]';
    about 5 minutes on 2 cores). Then run `sam2voice train understanding` to refit the heads on it."""
    from graphs.understanding.encoder import ENCODER
    from graphs.understanding.finetune import finetune_encoder
    from memories.errors import InvalidInput

    _settings()
    try:
        result = finetune_encoder(out=out or ENCODER, progress=lambda line: err.print(f"[dim]{line}[/]"))
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    except InvalidInput as exc:
        raise _fail(exc) from None
    _emit(result, as_json=False)


@train_app.command("understanding")
def train_understanding_command(
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the weights (default: the shipped "
                                                            "graphs/understanding/weights.npz).")] = None,
) -> None:
    """Retrain the understanding heads from graphs/understanding/corpus (train split; thresholds on validation)."""
    from graphs.understanding.encoder import UnderstandingEncoder
    from graphs.understanding.heads import WEIGHTS
    from graphs.understanding.train import train_understanding
    from memories.errors import InvalidInput

    _settings()
    embedder = UnderstandingEncoder()
    try:
        result = asyncio.run(train_understanding(embedder, model_id=embedder.model_id, out=out or WEIGHTS,
                                                 progress=lambda line: err.print(f"[dim]{line}[/]")))
    except InvalidInput as exc:
        raise _fail(exc) from None
    _emit(result, as_json=False)


def _emit(result: object, *, as_json: bool) -> None:
    """A command's result: one JSON line for machines, pretty JSON for people."""
    if as_json:
        print(json.dumps(result))
    else:
        console.print_json(json.dumps(result))


def main() -> None:
    """Entry point of the ``sam2voice`` script."""
    app()
