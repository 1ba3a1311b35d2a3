/*
 * tp_cli - the command line: --help, --version, --check.
 */
#ifndef TP_CLI_H
#define TP_CLI_H

/*
 * Handle argv.  Returns -1 when there is nothing to do but serve (no
 * arguments); otherwise the process's exit status after doing what was
 * asked (0 ok, 1 a check failed, 2 a usage error).
 */
int tp_cli_main(int argc, char **argv, char *const *envp);

#endif
