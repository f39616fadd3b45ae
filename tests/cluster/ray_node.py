"""``ray start`` for one node of the test cluster, run as ``python ray_node.py start ...``: Ray's own CLI with
four substitutions, all for a small shared test machine, none changing how the node schedules or runs work.

- ``--node-ip-address=127.0.0.1`` stays 127.0.0.1. Ray's ``resolve_ip_for_localhost`` replaces a loopback
  address with the machine's routable one, so a "local" cluster would register and be reached on the network
  interface; Ray's one switch for loopback nodes (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) refuses a second node.
- The dashboard agent's HTTP port, which the fixture chose (``--dashboard-agent-listen-port``), is written to the
  session's port file before the raylet starts. The raylet otherwise waits a fixed 15 s for the agent to write
  it and aborts (``WaitForDashboardAgentPorts``); the agent's imports alone take longer on 2 cores busy with
  other jobs (RAY_agent_register_timeout_ms does not govern that wait in this Ray). The agent writes the same
  number once it listens.
- ``ray start`` waits up to STRATA_RAY_NODE_WAIT_S (not a fixed 30 s) for its raylet to register.
- No Ray Client server (``ray://``; Strata joins through the GCS address): it too waits only 30 s for the raylet,
  and its exit makes ``ray start --block`` stop the node. Ray starts it whenever its client extras are
  installed and refuses ``--ray-client-server-port=0``.
"""

import inspect
import os
import sys
import time

import ray._private.services as services
import ray.scripts.scripts as cli
from ray._raylet import DASHBOARD_AGENT_LISTEN_PORT_NAME, persist_port

WAIT_S = float(os.environ.get("STRATA_RAY_NODE_WAIT_S", "120"))
_get_node = services.get_node
_start_raylet = services.start_raylet


def _get_node_patient(gcs_address, node_id, *args, **kwargs):
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return _get_node(gcs_address, node_id, *args, **kwargs)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _start_raylet_with_agent_port(*args, **kwargs):
    bound = inspect.signature(_start_raylet).bind(*args, **kwargs)
    port = bound.arguments.get("dashboard_agent_listen_port")
    if port:
        persist_port(bound.arguments["session_dir"], bound.arguments["node_id"], DASHBOARD_AGENT_LISTEN_PORT_NAME,
                     int(port))
    return _start_raylet(*args, **kwargs)


services.resolve_ip_for_localhost = lambda host: host
services.get_node = _get_node_patient
services.start_raylet = _start_raylet_with_agent_port
cli.get_ray_client_dependency_error = lambda: "the test cluster runs no Ray Client server"

if __name__ == "__main__":
    sys.exit(cli.main())
