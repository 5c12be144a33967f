"""Business logic with no aiogram import: conversations, billing, the sealed inference client."""
