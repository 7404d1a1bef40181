#!/bin/sh
# Prints to both streams for a while, interleaved.
i=1
while [ "$i" -le 40 ]; do
    echo "step $i: working on part $((i % 7))"
    [ $((i % 3)) -eq 0 ] && echo "warning: part $((i % 7)) is slow" >&2
    i=$((i + 1))
    sleep 0.25
done
echo "done"
