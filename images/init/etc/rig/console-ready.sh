# Sourced through $ENV by the console shell rig's /init starts, after busybox's banner: tells rig
# the shell now reads commands (or that init failed). See /init for the contract.
unset ENV
if [ -n "$RIG_INIT_FAILED" ]; then
	echo "RIG-INIT-FAILED $RIG_INIT_FAILED"
	unset RIG_INIT_FAILED
else
	echo "RIG-READY $(uname -r)"
fi
