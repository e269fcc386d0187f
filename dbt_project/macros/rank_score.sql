{#-
    Quantile score 1..n_scores of `column` among all rows of the query:
        score = 1 + floor(n_scores * (rank() over (order by column) - 1) / count(*) over ())
    rank() gives tied rows the same (lowest) rank, so ties share a score. With direction 'asc' the
    largest values get the highest score; use 'desc' where a small value is good (recency in days).
    The classic RFM quintile scoring (Hughes, "Strategic Database Marketing"), with ties kept together.
-#}
{% macro rank_score(column, direction='asc', n_scores=5) -%}
    {%- if direction not in ('asc', 'desc') -%}
        {{ exceptions.raise_compiler_error("rank_score direction must be 'asc' or 'desc', got " ~ direction) }}
    {%- endif -%}
    cast(
        1 + floor(
            {{ n_scores }} * (rank() over (order by {{ column }} {{ direction }}) - 1)
            / count(*) over ()
        )
        as {{ dbt.type_int() }}
    )
{%- endmacro %}
