# fish completion for ashmemctl(1).
#
# Every candidate comes from ashmemctl's command table through its hidden
# helper, `ashmemctl __complete -- WORDS...`: given the words typed so far
# it prints the candidates for the last one, one per line
# ("CANDIDATE<TAB>DESCRIPTION", which is fish's own format), then a
# directive: ":words", ":nospace", ":files" or ":commands". Region names
# come from the running broker; completion never starts one.

function __ashmemctl_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    # the token as the command will get it (quotes removed), if it parses
    set -l unquoted (string unescape -- $current 2>/dev/null)
    and set current $unquoted
    set -l args
    if test (count $tokens) -gt 1
        set args $tokens[2..-1]
    end
    set -l out ($tokens[1] __complete -- $args "$current" 2>/dev/null)
    or return
    test (count $out) -gt 0
    or return
    set -l directive $out[-1]
    set -e out[-1]
    switch $directive
        case :files
            # --socket=PATH: the file name starts after the '='
            if string match -qr -- '^-[^=]*=' "$current"
                set -l lead (string replace -r -- '=.*' '=' "$current")
                set -l value (string replace -r -- '^[^=]*=' '' "$current")
                for p in (__fish_complete_path "$value")
                    printf '%s%s\n' $lead $p
                end
            else
                __fish_complete_path "$current"
            end
        case :commands
            __fish_complete_command
        case '*'
            printf '%s\n' $out
    end
end

complete -c ashmemctl -f -a '(__ashmemctl_complete)'
