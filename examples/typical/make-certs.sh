#!/usr/bin/env bash
# Makes a private CA and a certificate for frps signed by it, for the README's typical set-up.
# Usage: bash make-certs.sh SERVER_NAME [DIR]
#   SERVER_NAME  the name (or IP address) frpc uses to reach frps, e.g. frps.example.com
#   DIR          where to write ca.crt, ca.key, server.crt, server.key (default: .)
# frps uses server.crt/server.key; every frpc gets ca.crt (keep ca.key to itself).
set -euo pipefail
name="${1:?usage: make-certs.sh SERVER_NAME [DIR]}"
dir="${2:-.}"
mkdir -p "$dir"
cd "$dir"
if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san="IP:$name"; else san="DNS:$name"; fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=frp CA" -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=$name" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' "$san" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
  -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 600 ca.key server.key
echo "wrote $(pwd)/ca.crt, ca.key, server.crt, server.key for $name"
