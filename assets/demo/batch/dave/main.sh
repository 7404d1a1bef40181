#!/bin/sh
# A submission that floods its output (the run log keeps head and tail).
yes "dave was here" | head -c 50000000
