"""Dataset tools: conversion, the four-class build, statistics and FiftyOne inspection."""
