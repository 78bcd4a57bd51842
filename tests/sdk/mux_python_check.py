"""Reads reeld's assets with Mux's official Python SDK (mux_python), whose
generated models reject any value outside Mux's enums. Run by tests/sdk.rs
with MUX_BASE_URL, MUX_TOKEN_ID, MUX_TOKEN_SECRET and EXPECT (a JSON object:
asset id -> status)."""
import json
import os
import sys

import mux_python

config = mux_python.Configuration()
config.host = os.environ["MUX_BASE_URL"]
config.username = os.environ["MUX_TOKEN_ID"]
config.password = os.environ["MUX_TOKEN_SECRET"]
api = mux_python.AssetsApi(mux_python.ApiClient(config))
expect = json.loads(os.environ["EXPECT"])

listed = api.list_assets(limit=100)
ids = {a.id: a.status for a in listed.data}
for asset_id, status in expect.items():
    assert ids.get(asset_id) == status, (asset_id, ids.get(asset_id), status)
    one = api.get_asset(asset_id).data
    assert one.status == status, (asset_id, one.status)
    if status == "ready":
        assert one.duration and one.duration > 0
        assert one.tracks
    if status == "errored":
        assert one.errors and one.errors.messages
print(f"mux_python: {len(expect)} assets read, no validation error", file=sys.stderr)
