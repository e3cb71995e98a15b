# shellcheck shell=bash
# test/lib/tls.sh: a throwaway certificate authority and server certificates
# for tests that talk HTTPS to the Moneroo mock.  Needs openssl.
#
#   . test/lib/tls.sh
#   tls_make_ca DIR                      # DIR/ca.pem, DIR/ca.key
#   tls_make_server_cert DIR NAME SAN    # DIR/NAME.pem, DIR/NAME.key signed by DIR's CA
#       e.g. tls_make_server_cert "$d" good 'DNS:localhost,IP:127.0.0.1'
#
# Keys are P-256 (fast to make), certificates valid for two days.

tls_make_ca() {
    local dir=${1:?tls_make_ca DIR}
    mkdir -p "$dir" || return 1
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 -subj '/CN=moneroo test CA' \
        -addext 'basicConstraints=critical,CA:TRUE' \
        -addext 'keyUsage=critical,keyCertSign,cRLSign' >/dev/null 2>&1
}

tls_make_server_cert() {
    local dir=${1:?tls_make_server_cert DIR NAME SAN} name=${2:?} san=${3:?}
    local cn=${san#*:}
    cn=${cn%%,*}
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$cn" >/dev/null 2>&1 || return 1
    printf '%s\n' "subjectAltName=$san" 'basicConstraints=CA:FALSE' \
        'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >"$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/$name.pem" -days 2 -extfile "$dir/$name.ext" >/dev/null 2>&1
}
