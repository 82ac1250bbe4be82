# bash completion for ashmemctl(1)                         -*- shell-script -*-
#
# Every candidate comes from ashmemctl's command table through its hidden
# helper, `ashmemctl __complete -- WORDS...`, so this script never drifts
# from the commands: it passes the words typed so far and prints, one per
# line, the candidates for the last one ("CANDIDATE<TAB>DESCRIPTION"), then
# a directive: ":words", ":nospace" (do not finish the word with a space),
# ":files" or ":commands" (leave it to bash). Region names come from the
# running broker; completion never starts one.

# __ashmemctl_dequote WORD: the word as the command will get it (quotes and
# backslashes removed), in REPLY. No expansion is ever run.
__ashmemctl_dequote() {
        local s=$1 out= c q= i
        for ((i = 0; i < ${#s}; i++)); do
                c=${s:i:1}
                if [[ $q == "'" ]]; then
                        if [[ $c == "'" ]]; then q=; else out+=$c; fi
                elif [[ $c == '\' ]]; then
                        ((i++))
                        if [[ $q == '"' && ${s:i:1} != [\"\\\$\`] ]]; then
                                out+='\'
                        fi
                        out+=${s:i:1}
                elif [[ $q == '"' ]]; then
                        if [[ $c == '"' ]]; then q=; else out+=$c; fi
                elif [[ $c == "'" || $c == '"' ]]; then
                        q=$c
                else
                        out+=$c
                fi
        done
        REPLY=$out
}

_ashmemctl() {
        local i w glue=0 line=${COMP_LINE-} pos=0 rest trimmed
        local -a raw=()
        # bash cut the line at the characters of COMP_WORDBREAKS ("=", ":"):
        # glue those pieces back into the words as typed
        for ((i = 0; i <= COMP_CWORD && i < ${#COMP_WORDS[@]}; i++)); do
                w=${COMP_WORDS[i]}
                if [[ -n $line ]]; then
                        rest=${line:pos}
                        trimmed=${rest#"${rest%%[![:space:]]*}"}
                        glue=$(( i > 0 && ${#trimmed} == ${#rest} ))
                        pos=$(( pos + ${#rest} - ${#trimmed} + ${#w} ))
                elif (( i > 0 )) && [[ $w == [=:]* || ${COMP_WORDS[i-1]} == *[=:] ]]; then
                        glue=1
                else
                        glue=0
                fi
                if (( glue && ${#raw[@]} )); then
                        raw[-1]+=$w
                else
                        raw+=("$w")
                fi
        done
        (( ${#raw[@]} )) || return 0
        local piece=${COMP_WORDS[COMP_CWORD]-}
        # the words for the helper, dequoted
        local -a words=()
        for w in "${raw[@]}"; do
                __ashmemctl_dequote "$w"
                words+=("$REPLY")
        done
        (( ${#raw[@]} > 1 )) || words+=("")
        local cmd=${words[0]}
        local out
        out=$("$cmd" __complete -- "${words[@]:1}" 2>/dev/null) || return 0
        local -a lines
        mapfile -t lines <<<"$out"
        (( ${#lines[@]} )) || return 0
        local directive=${lines[-1]}
        unset 'lines[-1]'

        # bash replaces only the piece after the last word break: what the
        # word has before it is the same in every candidate
        local cur
        if (( ${#raw[@]} > 1 )); then
                cur=${words[-1]}
        else
                cur=
        fi
        local quoted=0
        [[ $piece == [\'\"]* ]] && quoted=1
        __ashmemctl_dequote "${raw[-1]%"$piece"}"
        local before=$REPLY
        [[ ${raw[-1]} == "$piece" ]] && before=

        COMPREPLY=()
        case $directive in
        :files)
                compopt -o filenames 2>/dev/null
                __ashmemctl_dequote "$piece"
                mapfile -t COMPREPLY < <(compgen -f -- "$REPLY")
                return 0
                ;;
        :commands)
                __ashmemctl_dequote "$piece"
                mapfile -t COMPREPLY < <(compgen -c -- "$REPLY" | sort -u)
                return 0
                ;;
        :nospace)
                compopt -o nospace 2>/dev/null
                ;;
        esac
        local c
        for w in "${lines[@]}"; do
                c=${w%%$'\t'*}
                [[ $c == "$before"* ]] || continue
                c=${c#"$before"}
                if (( quoted )) || [[ $c =~ ^[A-Za-z0-9,._+:@%/=-]*$ ]]; then
                        COMPREPLY+=("$c")
                else
                        COMPREPLY+=("$(printf '%q' "$c")")
                fi
        done
        return 0
}

complete -F _ashmemctl ashmemctl
