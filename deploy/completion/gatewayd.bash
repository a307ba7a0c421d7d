# bash completion for gatewayd(8): subcommands, their flags, and file, device and level arguments.
# Installed by the Debian package as /usr/share/bash-completion/completions/gatewayd.
# cmd/gatewayd's TestCompletionListsEveryCommand checks it against the binary's own usage.

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
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	-socket)
		COMPREPLY=($(compgen -f -- "${cur:-/run/gatewayd/}"))
		return
		;;
	-port)
		COMPREPLY=($(compgen -f -- "${cur:-/dev/}"))
		return
		;;
	-log-format)
		COMPREPLY=($(compgen -W "console json" -- "$cur"))
		return
		;;
	-log-level)
		COMPREPLY=($(compgen -W "trace debug info warn error" -- "$cur"))
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
	probe) flags="-port -out" ;;
	sim) flags="-listen -demo -local -log-format -log-level -trace" ;;
	*) flags="" ;;
	esac
	if ((cword == 1)) && [[ $cur != -* ]]; then
		COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}
complete -F _gatewayd gatewayd
