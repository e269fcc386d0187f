{#-
    Quantile score 1..n_scores of `column` among all rows of the query:
        score = 1 + floor(n_scores * (rank() over (order by column <direction>) - 1) / count(*) over ())
    rank() gives tied rows the same (lowest) rank, so ties share a score, and the score depends on the
    values only (not on row order): deterministic. Convention: a higher score is better. With direction
    'asc' the largest values get the highest score (frequency, monetary); use 'desc' where a small value
    is good (recency in days: the most recent buyers get n_scores). The classic RFM quintile scoring
    (Hughes, "Strategic Database Marketing"), with ties kept together. The division is exact on engines
    whose `/` returns a fraction (DuckDB) and floors on those with integer division; both give the same
    score for these non-negative operands.
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
