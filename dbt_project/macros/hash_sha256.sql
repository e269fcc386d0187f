{#-
    Hex SHA-256 digest of a text expression (64 lowercase hex characters), e.g. for e-mail hashes that
    let marts join on identity without holding the address. Dispatched because the function name
    differs by engine.
-#}
{% macro hash_sha256(expression) -%}
    {{ return(adapter.dispatch('hash_sha256', 'crm_warehouse')(expression)) }}
{%- endmacro %}

{% macro default__hash_sha256(expression) -%}
    sha256({{ expression }})
{%- endmacro %}

{% macro spark__hash_sha256(expression) -%}
    sha2({{ expression }}, 256)
{%- endmacro %}

{% macro databricks__hash_sha256(expression) -%}
    sha2({{ expression }}, 256)
{%- endmacro %}
