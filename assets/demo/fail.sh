#!/bin/sh
# Fails the way a broken submission does.
echo "reading input"
echo "Traceback (most recent call last):" >&2
echo "  File \"main.py\", line 3, in <module>" >&2
echo "ZeroDivisionError: division by zero" >&2
exit 1
