path "secret/*" {
  capabilities = ["read", "list"]
}
# comment
x = <<EOT
hello
EOT
