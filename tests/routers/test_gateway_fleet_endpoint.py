"""`endpoint.json`, which `gray rollback`'s early write reads instead of the plan, keeps
every replica of a gateway fleet; a file written for one gateway still reads as before."""

from __future__ import annotations

import json
from pathlib import Path

from gray.cli.rollback_first import _gateway_router
from gray.controller.journal import LocalJournal
from gray.controller.operator import ENDPOINT_FILE, Endpoint, save_endpoint, saved_endpoint
from gray.controller.routers.gateway import GatewayRouter
from gray.controller.routers.gateway_fleet import GatewayFleet

URLS = ("http://gw-0:8080", "http://gw-1:8080", "http://gw-2:8080")


def test_every_replica_is_saved_and_the_early_write_drives_them_all(tmp_path: Path) -> None:
    local = LocalJournal(tmp_path)
    save_endpoint(local, "fraud-1", Endpoint("gateway", URLS[0], 3.0, URLS))
    saved = saved_endpoint(local, "fraud-1")
    assert saved is not None and saved.addresses == URLS
    with _gateway_router(saved.addresses, "token", saved.timeout) as router:
        assert isinstance(router, GatewayFleet) and router.urls == URLS


def test_a_file_of_one_gateway_reads_as_one_address(tmp_path: Path) -> None:
    local = LocalJournal(tmp_path)
    folder = local.root / "fraud-2"
    folder.mkdir(parents=True)
    old = {"type": "gateway", "url": URLS[0], "timeout": 10.0}
    (folder / ENDPOINT_FILE).write_text(json.dumps(old), encoding="utf-8")
    saved = saved_endpoint(local, "fraud-2")
    assert saved is not None and saved.addresses == (URLS[0],)
    assert saved.to_dict() == old  # one gateway is still written the old way
    with _gateway_router(saved.addresses, "token", saved.timeout) as router:
        assert isinstance(router, GatewayRouter)
