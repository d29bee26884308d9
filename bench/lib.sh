# bench/lib.sh — shell helpers the bench scripts share (sourced, not run).

# sim_head PKI ANNUAIRE_LISTEN [TOP_LINES]: the top of a `rocgw sim` configuration on the test PKI
# that `rocgw pki init --dir PKI` wrote — its admin listener, TOP_LINES, the IGC-Santé anchors
# and CRLs, the annuaire on ANNUAIRE_LISTEN, and `[certificates]` with the valid AMC server
# certificate. Lines printed after it continue `[certificates]`.
sim_head() {
  local pki=$1 annuaire=$2 top=${3:-}
  echo 'admin_listen = "127.0.0.1:0"'
  [[ -n $top ]] && printf '%s\n' "$top"
  cat <<EOT
[igc_sante]
anchors = ["$pki/igc-sante/acr.pem"]
intermediates = ["$pki/igc-sante/aci-el-org.pem"]
crls = ["$pki/igc-sante/aci-el-org.crl.pem", "$pki/igc-sante/acr.crl.pem"]
[annuaire]
listen = "$annuaire"
cert = "$pki/osi/annuaire.chain.pem"
key = "$pki/osi/annuaire.key"
[certificates]
valid = { cert = "$pki/osi/amc-a.chain.pem", key = "$pki/osi/amc-a.key" }
EOT
}
