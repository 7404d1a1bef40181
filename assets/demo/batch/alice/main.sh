#!/bin/sh
# A correct submission: adds the two numbers on each line of its input.
while read -r a b; do echo $((a + b)); done
