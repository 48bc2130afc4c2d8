"""``railstream server``: checks the options, loads the configs and runs the HTTP server (one
process, or ``--workers N``). The server is imported here, when it is launched, so that
``railstream chat`` never loads it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import trio

from railstream.config_schema import stream_first_notice

from ._logging import configure_logging

__all__ = ["server_command"]


def server_command(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from railstream.server import (
        CannotListenError,
        ConfigRegistry,
        ServerLimits,
        ServerSetupError,
        announce,
        first_leaf,
        serve,
        settle_heap,
    )

    configure_logging(args.log_level, args.log_format)

    token = None
    if args.auth_token_env:
        token = os.environ.get(args.auth_token_env)
        if not token:
            print(
                f"railstream server: --auth-token-env names {args.auth_token_env}, which is not set",
                file=sys.stderr,
            )
            return 2
    if not args.shutdown_grace_s >= 0:  # NaN too
        print("railstream server: --shutdown-grace-s must be 0 or more", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("railstream server: --workers must be 1 or more", file=sys.stderr)
        return 2
    try:
        registry = ConfigRegistry.load(args.config, args.default_config_id)
    except ServerSetupError as exc:
        print(f"railstream server: cannot start:\n{exc}", file=sys.stderr)
        return 2
    if not args.reuse_port:  # said once: by the process that starts the workers, not each
        for config_id in registry.ids:
            notice = stream_first_notice(registry.rails(config_id).config)
            if notice is not None:
                logging.getLogger("railstream.server").warning("config %r: %s", config_id, notice)
    if args.workers > 1:
        from railstream.server import serve_workers

        # The configs loaded here too: a bad one stops the start at once, before any worker.
        return serve_workers(args, registry, argv or sys.argv[1:])
    limits = ServerLimits(
        max_body_bytes=args.max_body_bytes,
        max_concurrent=args.max_concurrent,
        auth_token=token,
        body_timeout_s=args.body_timeout,
        header_timeout_s=args.header_timeout,
        backlog=args.backlog,
        keep_alive_timeout_s=args.keep_alive_timeout,
        shutdown_grace_s=args.shutdown_grace_s,
        block_error_event=args.block_error_event,
        cors_origins=tuple(args.cors_origin),
    )

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(
                    registry,
                    host=args.host,
                    port=args.port,
                    limits=limits,
                    reuse_port=args.reuse_port,
                    task_status=task_status,
                )
            )
            announce(binds, registry)  # a worker's goes to the process that started it

    settle_heap()
    cannot_listen: CannotListenError | None = None
    try:
        trio.run(run)
    except* CannotListenError as failed:
        # Raised before anything was served; this run's nursery wraps it in a group.
        cannot_listen = first_leaf(failed)
    if cannot_listen is not None:
        print(
            f"railstream server: cannot listen on {args.host}:{args.port}: {cannot_listen}",
            file=sys.stderr,
        )
        return 2
    return 0
