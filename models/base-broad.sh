#!/usr/bin/env bash
# The broad base: four arms acting in end-effector deltas (Panda, Kinova3, Sawyer, IIWA; the UR5e stays out,
# it is the adaptation target), robosuite's Lift, Stack and PickPlaceCan, scripted demonstrations and
# hindsight-labelled play, in scenes dressed as `adapt eval` dresses them (recoloured objects, scattered).
# The new arms act in end-effector deltas as the Panda does: their heads start as copies of the Panda's.
#
# Resumable: rerun the same command. Each dataset is generated once (a dataset folder that exists is
# complete), and pretraining resumes from its last checkpoint in $RUN. Run it in the background:
#
#   nohup bash models/base-broad.sh > base-broad.log 2>&1 &
#
# Settings through the environment: ADAPT (the adapt command), DATA (datasets), RUN (the run folder),
# STEPS (total optimizer steps), INIT (the checkpoint it continues: the bundled Lift base by default,
# "none" to start from random weights), MINUTES (minutes per arm, task and kind; the Panda gets twice).
set -euo pipefail
cd "$(dirname "$0")/.."
ADAPT=${ADAPT:-.venv/bin/adapt}
DATA=${DATA:-data/broad}
RUN=${RUN:-runs/base-broad}
STEPS=${STEPS:-20000}
INIT=${INIT:-models/base-small}
MINUTES=${MINUTES:-4}
export LP_NUM_THREADS=1

sources=()
generate() {  # name robot kind task minutes seed
  local out="$DATA/$1" task=()
  [ "$3" = demo ] && task=(--task "$4")
  [ "$3" = play ] && task=(--hindsight)
  if [ ! -f "$out/meta/info.json" ]; then
    "$ADAPT" data generate --robot "$2" --kind "$3" "${task[@]}" --minutes "$5" --seed "$6" --out "$out"
  fi
  sources+=(--data "$out=$2")
}

seed=300
for robot in panda kinova3 sawyer_osc iiwa_osc; do
  minutes=$MINUTES
  [ "$robot" = panda ] && minutes=$((2 * MINUTES))
  for task in Lift Stack PickPlaceCan; do
    generate "${robot}_demo_${task}" "$robot" demo "$task" "$minutes" $((seed++))
  done
  generate "${robot}_play" "$robot" play - "$minutes" $((seed++))
done

init=()
[ "$INIT" != none ] && init=(--init "$INIT")
"$ADAPT" pretrain "${sources[@]}" "${init[@]}" --size small --steps "$STEPS" --lr 3e-4 --action-weight 10 --video-weight 5 --video-every 4 \
  --init-heads donor --batch-size 16 --workers 1 --checkpoint-every 250 --half --seed 0 --out "$RUN"
