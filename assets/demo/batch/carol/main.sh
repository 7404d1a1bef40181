#!/bin/sh
# A submission that hangs on its input.
read -r line
while :; do sleep 1; done
