/*
 * commands.h - the commands of sagesvc, one function each.
 *
 * Each command takes its own argv: argv[0] is the command's name. Returns the
 * process exit status (enum cli_exit in common.h). The dispatcher (main.c)
 * maps a command name to one of these through its table.
 */
#ifndef SAGE_CLI_COMMANDS_H
#define SAGE_CLI_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_host(int argc, char **argv);     /* cli/cmd_host.c */
int cmd_deploy(int argc, char **argv);   /* cli/cmd_deploy.c */
int cmd_undeploy(int argc, char **argv); /* cli/cmd_deploy.c */
int cmd_scale(int argc, char **argv);    /* cli/cmd_deploy.c */
int cmd_replica(int argc, char **argv);  /* cli/cmd_replica.c */

#endif
