# bash completion for memsync (installed as /usr/share/bash-completion/completions/memsync).
_memsync() {
    local cur prev words cword
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local commands="serve sim integration sync clients assets status insights changes webhook key user account apikey worker config backup restore"
    local global="--db --config --log-level --help --version"
    local i cmd="" sub="" n=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --db | --config | --log-level) ((i++)) ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then
                cmd=${COMP_WORDS[i]}
            elif [[ -z $sub ]]; then
                sub=${COMP_WORDS[i]}
            fi
            ((n++))
            ;;
        esac
    done
    case $prev in
    --log-level)
        COMPREPLY=($(compgen -W "error warn info debug" -- "$cur"))
        return
        ;;
    --format)
        COMPREPLY=($(compgen -W "table csv json jsonl snipeit glpi" -- "$cur"))
        return
        ;;
    --app-strategy)
        COMPREPLY=($(compgen -W "auto per-device export" -- "$cur"))
        return
        ;;
    --db | --config | backup | restore | --url-file | --*-file)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    esac
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi
    local words_for=""
    case $cmd in
    integration) [[ -z $sub ]] && words_for="add list show rotate-secret remove" ;;
    assets) [[ -z $sub ]] && words_for="hardware software installs products" ;;
    key) [[ -z $sub ]] && words_for="rotate" ;;
    user) [[ -z $sub ]] && words_for="add list passwd remove reset-totp" ;;
    account)
        if [[ -z $sub ]]; then
            words_for="require-totp sso local-signin"
        elif [[ ($sub == require-totp || $sub == local-signin) && $n -eq 2 ]]; then
            words_for="on off"
        elif [[ $sub == sso && $n -eq 2 ]]; then
            words_for="set show off"
        fi
        ;;
    apikey) [[ -z $sub ]] && words_for="create list revoke" ;;
    esac
    if [[ -n $words_for && $cur != -* ]]; then
        COMPREPLY=($(compgen -W "$words_for" -- "$cur"))
        return
    fi
    local opts="--help"
    case $cmd in
    serve) opts="--listen --url-file --no-schedule --help" ;;
    sync) opts="-v --verbose --integration --full --incremental --parallel --no-software --hardware-detail --app-strategy --queue --confirm-retire --help" ;;
    clients) opts="--format --help" ;;
    assets) opts="--client --search --include-retired --format --os --type --stale-days --os-support --serial --encrypted --compliance --model --manufacturer --ownership --enrolled-before --enrolled-after --missing --included --sort --columns --no-headers --limit --help" ;;
    worker) opts="--once --lease-seconds --poll-seconds --concurrency --no-software --help" ;;
    changes) opts="--since --client --kind --account --help" ;;
    webhook) opts="--secret-file --event --help" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}
complete -F _memsync memsync
