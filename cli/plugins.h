/*
 * plugins.h - finding the code of a configured service: a plugin file or a
 * built-in. The rules are `sagesvc run`'s (see its --help), shared so that
 * a replica started by `sagesvc host` resolves a plugin exactly as `run`
 * would have on the deploying machine.
 */
#ifndef SAGESVC_CLI_PLUGINS_H
#define SAGESVC_CLI_PLUGINS_H

#include "sage/config.h"
#include "sage/plugin.h"
#include "sage/service.h"

/*
 * cli_plugin_resolve finds the code of service conf of configuration cfg:
 * a path (contains '/' or ends in .so; relative ones are taken from the
 * configuration file's directory) is loaded; a bare name N is looked up as
 * N.so or libsage_N.so in $SAGE_PLUGIN_PATH, the configuration file's
 * directory, BIN/plugins and BIN/../lib/sagesvc/plugins, and failing those
 * is the built-in service N. Writes the loaded plugin (NULL for a built-in;
 * close it after every task using it is freed) and the service table.
 * Returns SAGE_ENOENT (nothing found) or SAGE_EPLUGIN (a file that cannot
 * be used: never replaced by a built-in), after printing why on stderr.
 */
sage_err cli_plugin_resolve(const sage_config *cfg, const sage_service_conf *conf,
                            sage_plugin **pp, const sage_service **svcp);

#endif
