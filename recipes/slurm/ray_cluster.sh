#!/usr/bin/env bash
# shellcheck disable=SC2034  # NODES, NNODES, GPUS_PER_NODE, HEAD_IP, ADDRESS are set for the sourcing script
# Shared by dvmap_grpo.sbatch and dvmap_eval.sbatch (sourced, not run): the allocation's layout and a Ray cluster on
# it (head on the first node, a worker on every other, then wait until all have joined).
# Reads DVMAP_DRY_RUN (1: print the commands instead of running them), DVMAP_PYTHON, RAY_PORT, RAY_WAIT_SECONDS.

DRY_RUN="${DVMAP_DRY_RUN:-0}"
PYTHON="${DVMAP_PYTHON:-python3}"
RAY_PORT="${RAY_PORT:-6379}"
RAY_WAIT_SECONDS="${RAY_WAIT_SECONDS:-300}"

run() {  # run a command, or print it in a dry run
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

spawn() {  # run a long-lived command in the background; a dry run prints it in order instead
  if [[ "$DRY_RUN" == 1 ]]; then
    run "$@"
  else
    "$@" &
  fi
}

# Sets NODES (array), NNODES, GPUS_PER_NODE, HEAD, HEAD_IP, ADDRESS from the Slurm allocation.
dvmap_cluster_layout() {
  # Every host of the allocation, one array element each (verl's example builds a one-element array here).
  mapfile -t NODES < <(scontrol show hostnames "${SLURM_JOB_NODELIST:?not inside a Slurm allocation}")
  NNODES="${SLURM_NNODES:-${#NODES[@]}}"
  if [[ "${#NODES[@]}" -ne "$NNODES" ]]; then
    echo "error: SLURM_NNODES=$NNODES but the node list expands to ${#NODES[@]} hosts: ${NODES[*]}" >&2
    exit 1
  fi
  # GPUs per node from the allocation (SLURM_GPUS_ON_NODE, or --gpus-per-node which may read "a100:8").
  GPUS_PER_NODE="${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-8}}"
  GPUS_PER_NODE="${GPUS_PER_NODE##*:}"
  HEAD="${NODES[0]}"
  if [[ "$DRY_RUN" == 1 ]]; then
    HEAD_IP="$HEAD"
  else
    HEAD_IP="$(srun --nodes=1 --ntasks=1 -w "$HEAD" hostname --ip-address | awk '{print $1}')"
  fi
  ADDRESS="$HEAD_IP:$RAY_PORT"
}

# Starts the Ray head and workers and waits until every node has joined.
dvmap_start_ray() {
  spawn srun --nodes=1 --ntasks=1 -w "$HEAD" \
    ray start --head --node-ip-address="$HEAD_IP" --port="$RAY_PORT" --num-gpus="$GPUS_PER_NODE" --block
  [[ "$DRY_RUN" == 1 ]] || sleep 10
  local node
  for node in "${NODES[@]:1}"; do
    spawn srun --nodes=1 --ntasks=1 -w "$node" \
      ray start --address="$ADDRESS" --num-gpus="$GPUS_PER_NODE" --block
  done
  # Wait until every node has joined, so the driver sees the whole cluster.
  if [[ "$DRY_RUN" != 1 ]]; then
    local deadline=$((SECONDS + RAY_WAIT_SECONDS))
    until [[ "$(RAY_ADDRESS="$ADDRESS" "$PYTHON" -c 'import ray; ray.init(); print(sum(n["Alive"] for n in ray.nodes()))' 2>/dev/null | tail -n 1)" == "$NNODES" ]]; do
      if ((SECONDS > deadline)); then
        echo "error: Ray cluster did not reach $NNODES nodes in ${RAY_WAIT_SECONDS}s" >&2
        exit 1
      fi
      sleep 5
    done
  fi
}
