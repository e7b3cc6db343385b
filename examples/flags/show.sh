#!/usr/bin/env bash
echo "greeting arg: $1"
echo "FLAG_GREETING=$FLAG_GREETING FLAG_COUNT=$FLAG_COUNT"
