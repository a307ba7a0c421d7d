# bash completion for gatewayd(8): subcommands, their flags, and file, device and level arguments.
# Installed by the Debian package as /usr/share/bash-completion/completions/gatewayd.
# cmd/gatewayd's TestCompletionListsEveryCommand checks it against the binary's own usage.

# _gatewayd_reply ARGS...: COMPREPLY from compgen ARGS, one word a line (file names may hold spaces).
_gatewayd_reply() {
	mapfile -t COMPREPLY < <(compgen "$@")
}

_gatewayd() {
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
	fi

	local commands="run check status at doctor probe sim version help"
	# The subcommand is the first word, if it is not a flag (then it is the daemon: run).
	local cmd=""
	if ((cword > 1)) && [[ ${words[1]} != -* ]]; then
		cmd=${words[1]}
	fi

	case $prev in
	-config | -out)
		_gatewayd_reply -f -- "$cur"
		return
		;;
	-socket)
		_gatewayd_reply -f -- "${cur:-/run/gatewayd/}"
		return
		;;
	-port)
		_gatewayd_reply -f -- "${cur:-/dev/}"
		return
		;;
	-log-format)
		_gatewayd_reply -W "console json" -- "$cur"
		return
		;;
	-log-level)
		_gatewayd_reply -W "trace debug info warn error" -- "$cur"
		return
		;;
	-timeout | -wait | -demo | -listen | -local)
		return
		;;
	esac

	local flags
	case $cmd in
	"" | run) flags="-config -version" ;;
	check) flags="-config" ;;
	status) flags="-json -q -socket -config" ;;
	at) flags="-force -timeout -socket -config" ;;
	doctor) flags="-config -socket -wait" ;;
	probe) flags="-port -out -baud -urc-port -broker -user -password-file -wait" ;;
	sim) flags="-listen -demo -local -log-format -log-level -trace" ;;
	*) flags="" ;;
	esac
	if ((cword == 1)) && [[ $cur != -* ]]; then
		_gatewayd_reply -W "$commands" -- "$cur"
		return
	fi
	_gatewayd_reply -W "$flags" -- "$cur"
}
complete -F _gatewayd gatewayd
