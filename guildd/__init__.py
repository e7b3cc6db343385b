# guildd: the daemon. It owns the run store (index over run dirs), the executor (per-run shims),
# the run state machine, and the gRPC front door on a Unix socket.
