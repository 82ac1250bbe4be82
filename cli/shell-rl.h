/* SPDX-License-Identifier: MIT */
/*
 * GNU readline for the interactive shell, loaded when the shell starts at
 * a terminal (dlopen of SHELL_RL_SONAME), so that every other command of
 * ashmemctl starts without loading it (and libtinfo). Include this
 * instead of <readline/readline.h> and <readline/history.h>: readline's
 * names used by the shell are macros for the pointers shell_rl_load()
 * fills, and calling them before it succeeded is a bug.
 */
#ifndef ASHMEMCTL_SHELL_RL_H
#define ASHMEMCTL_SHELL_RL_H

#include <stddef.h>
#include <stdio.h>

#include <readline/readline.h>
#include <readline/history.h>

/* the library the shell loads (Debian's libreadline8) */
#define SHELL_RL_SONAME "libreadline.so.8"

/* readline's functions and variables that the shell uses */
#define SHELL_RL_SYMS(X) \
        X(add_history) \
        X(tilde_expand) \
        X(append_history) \
        X(clear_history) \
        X(history_get) \
        X(history_truncate_file) \
        X(read_history) \
        X(stifle_history) \
        X(using_history) \
        X(rl_callback_handler_install) \
        X(rl_callback_handler_remove) \
        X(rl_callback_read_char) \
        X(rl_callback_sigcleanup) \
        X(rl_cleanup_after_signal) \
        X(rl_clear_signals) \
        X(rl_completion_matches) \
        X(rl_display_match_list) \
        X(rl_filename_completion_function) \
        X(rl_forced_update_display) \
        X(rl_free_line_state) \
        X(rl_on_new_line) \
        X(rl_redisplay) \
        X(rl_replace_line) \
        X(rl_reset_after_signal) \
        X(rl_resize_terminal) \
        X(rl_set_prompt) \
        X(history_base) \
        X(history_length) \
        X(rl_attempted_completion_function) \
        X(rl_attempted_completion_over) \
        X(rl_catch_sigwinch) \
        X(rl_char_is_quoted_p) \
        X(rl_completer_quote_characters) \
        X(rl_completer_word_break_characters) \
        X(rl_completion_display_matches_hook) \
        X(rl_completion_suppress_append) \
        X(rl_end) \
        X(rl_line_buffer) \
        X(rl_mark) \
        X(rl_outstream) \
        X(rl_point) \
        X(rl_readline_name)

struct shell_rl {
#define SHELL_RL_FIELD(n) __typeof__(n) *n;
        SHELL_RL_SYMS(SHELL_RL_FIELD)
#undef SHELL_RL_FIELD
};

extern struct shell_rl shell_rl;

/* Load readline (once): 0, or -1 with why in err (len bytes). */
int shell_rl_load(char *err, size_t len);

#ifndef SHELL_RL_NO_MACROS
#define add_history (*shell_rl.add_history)
#define tilde_expand (*shell_rl.tilde_expand)
#define append_history (*shell_rl.append_history)
#define clear_history (*shell_rl.clear_history)
#define history_get (*shell_rl.history_get)
#define history_truncate_file (*shell_rl.history_truncate_file)
#define read_history (*shell_rl.read_history)
#define stifle_history (*shell_rl.stifle_history)
#define using_history (*shell_rl.using_history)
#define rl_callback_handler_install (*shell_rl.rl_callback_handler_install)
#define rl_callback_handler_remove (*shell_rl.rl_callback_handler_remove)
#define rl_callback_read_char (*shell_rl.rl_callback_read_char)
#define rl_callback_sigcleanup (*shell_rl.rl_callback_sigcleanup)
#define rl_cleanup_after_signal (*shell_rl.rl_cleanup_after_signal)
#define rl_clear_signals (*shell_rl.rl_clear_signals)
#define rl_completion_matches (*shell_rl.rl_completion_matches)
#define rl_display_match_list (*shell_rl.rl_display_match_list)
#define rl_filename_completion_function (*shell_rl.rl_filename_completion_function)
#define rl_forced_update_display (*shell_rl.rl_forced_update_display)
#define rl_free_line_state (*shell_rl.rl_free_line_state)
#define rl_on_new_line (*shell_rl.rl_on_new_line)
#define rl_redisplay (*shell_rl.rl_redisplay)
#define rl_replace_line (*shell_rl.rl_replace_line)
#define rl_reset_after_signal (*shell_rl.rl_reset_after_signal)
#define rl_resize_terminal (*shell_rl.rl_resize_terminal)
#define rl_set_prompt (*shell_rl.rl_set_prompt)
#define history_base (*shell_rl.history_base)
#define history_length (*shell_rl.history_length)
#define rl_attempted_completion_function (*shell_rl.rl_attempted_completion_function)
#define rl_attempted_completion_over (*shell_rl.rl_attempted_completion_over)
#define rl_catch_sigwinch (*shell_rl.rl_catch_sigwinch)
#define rl_char_is_quoted_p (*shell_rl.rl_char_is_quoted_p)
#define rl_completer_quote_characters (*shell_rl.rl_completer_quote_characters)
#define rl_completer_word_break_characters (*shell_rl.rl_completer_word_break_characters)
#define rl_completion_display_matches_hook (*shell_rl.rl_completion_display_matches_hook)
#define rl_completion_suppress_append (*shell_rl.rl_completion_suppress_append)
#define rl_end (*shell_rl.rl_end)
#define rl_line_buffer (*shell_rl.rl_line_buffer)
#define rl_mark (*shell_rl.rl_mark)
#define rl_outstream (*shell_rl.rl_outstream)
#define rl_point (*shell_rl.rl_point)
#define rl_readline_name (*shell_rl.rl_readline_name)
#endif

#endif
