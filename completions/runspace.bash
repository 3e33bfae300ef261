# bash completion for runspace(1): subcommands, options, their values and files. Installed as
# share/bash-completion/completions/runspace. The options are read from `runspace COMMAND
# --help` of the program being completed, so they always match the installed version.

_runspace_options()
{
    "$1" "$2" --help 2>/dev/null |
        grep -oE -- '(^|[ ,])-{1,2}[A-Za-z][A-Za-z0-9-]*' | tr -d ' ,' | sort -u
}

_runspace()
{
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=${COMP_WORDS[COMP_CWORD - 1]}
    local prog=${COMP_WORDS[0]}
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W "foreach run scan joblog demo --help --version" -- "$cur"))
        return
    fi
    local cmd=${COMP_WORDS[1]}
    case $prev in
    -f | --file | --input | -iL | --input-list | --excludefile | -oN | -oX | -oG | -oA | \
        --module | --joblog)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --datadir)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur"))
        return
        ;;
    --format)
        case $cmd in
        scan) COMPREPLY=($(compgen -W "table jsonl csv" -- "$cur")) ;;
        run) COMPREPLY=($(compgen -W "raw json" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "raw jsonl csv table" -- "$cur")) ;;
        esac
        return
        ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_runspace_options "$prog" "$cmd")" -- "$cur"))
        return
    fi
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
}

complete -F _runspace runspace
