#!/bin/sh
# Colours that should show, and escape sequences that must not reach the
# terminal: a clipboard write (OSC 52), a window title (OSC 0), a screen clear.
printf '\033[32mgreen\033[0m \033[1;31mbold red\033[0m plain\n'
printf '\033]52;c;cHduZWQ=\007\033]0;pwned\007\033[2Jafter the hostile sequences\n'
printf 'tab\tseparated\tcolumns\n'
