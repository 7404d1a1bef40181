#!/bin/sh
# Says hello, then hangs until killed (or timed out).
echo "starting; this one never finishes"
sleep 100000
