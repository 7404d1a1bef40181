#!/bin/sh
# A wrong submission: subtracts instead, and complains.
echo "warning: not sure about the operator" >&2
while read -r a b; do echo $((a - b)); done
