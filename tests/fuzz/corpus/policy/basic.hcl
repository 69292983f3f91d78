path "secret/data/app/*" {
  capabilities = ["read", "list"]
}
path "secret/+/team/ba*" {
  capabilities = ["create", "update"]
  allowed_parameters = { "color" = ["red", "bl*"], "size" = [] }
  denied_parameters = { "admin" = [] }
  required_parameters = ["owner"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = 3600
}
path "sys/*" { capabilities = ["deny"] }
path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }
path "legacy" { policy = "write" }
