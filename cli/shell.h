/* SPDX-License-Identifier: MIT */
/*
 * `ashmemctl shell`: every command of the table at a readline prompt
 * ("ashmem> "), or read from a script, over one broker connection for the
 * whole session. Lines are split by shell_split() (cli/shell-split.h) and
 * each command goes through cmd_run() with ctx->shell set, exactly as on
 * the command line.
 *
 * The shell holds regions of its own, as a server process does:
 *   create --local NAME SIZE  a region in the shell process (cli_local);
 *   share NAME                registers it with the broker, transient
 *                             unless --keep: the name goes when the shell
 *                             does;
 *   map NAME / unmap NAME     keep a mapping for the session;
 *   regions                   what the shell holds: local regions and
 *                             mappings, with sizes;
 *   exit [STATUS]             leave (Ctrl-D too).
 *
 * Interactive: line editing, history in $XDG_STATE_HOME/ashmemctl/history
 * (default ~/.local/state/ashmemctl/history), tab completion from the
 * command table (cli/complete.h) with the live region names of the broker
 * and the shell's own, Ctrl-C cancels the line being typed (a running
 * command is not interrupted), Ctrl-D leaves.
 *
 * Not on a terminal, or with FILE: a script, one line at a time;
 * -e stops at the first command that fails, with its exit status;
 * -c LINE runs LINE. The exit status is the last command's.
 *
 * cli/shell.c reads and runs lines; cli/shell-history.c keeps the history,
 * cli/shell-complete.c completes at the prompt; the shell's own commands
 * and the regions it holds are in cli/shell-cmds.c (cli/shell-int.h has
 * the session they share).
 */
#ifndef ASHMEMCTL_SHELL_H
#define ASHMEMCTL_SHELL_H

#include "cmd.h"

extern const struct cmd_entry cmd_shell_entry, cmd_map_entry, cmd_unmap_entry,
        cmd_regions_entry, cmd_exit_entry;

#endif
