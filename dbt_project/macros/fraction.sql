{#-
    numerator / denominator as a double-precision fraction (a share, a rate, an average), the same number on
    every engine. DuckDB's `/` already divides in double precision, also for decimals and integers. Spark
    divides decimals in decimal arithmetic, rounded to a scale that depends on the operands' types, so the
    numerator is made a double first.
-#}
{% macro fraction(numerator, denominator) -%}
    {{ return(adapter.dispatch('fraction', 'crm_warehouse')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__fraction(numerator, denominator) -%}
    {{ numerator }} / {{ denominator }}
{%- endmacro %}

{% macro spark__fraction(numerator, denominator) -%}
    cast({{ numerator }} as double) / {{ denominator }}
{%- endmacro %}
